"""The code tools the agent calls: commands, search, file reading and writing, all fenced in
one workspace root and, where bubblewrap works, sandboxed."""

from punie.tools.commands import run_command
from punie.tools.files import read_file, write_file
from punie.tools.output import DEFAULT_OUTPUT_LIMIT, OutputCapper, cap_output
from punie.tools.sandbox import Sandbox, detect_sandbox
from punie.tools.search import find_ripgrep, grep
from punie.tools.workspace import Workspace

__all__ = [
    "DEFAULT_OUTPUT_LIMIT",
    "OutputCapper",
    "Sandbox",
    "Workspace",
    "cap_output",
    "detect_sandbox",
    "find_ripgrep",
    "grep",
    "read_file",
    "run_command",
    "write_file",
]
