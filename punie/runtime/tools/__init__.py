"""The code tools the agent calls: commands, search, file reading and writing, all fenced in
one workspace root and, where bubblewrap works, sandboxed."""

from punie.runtime.tools.commands import run_command
from punie.runtime.tools.files import read_file, write_file
from punie.runtime.tools.output import DEFAULT_OUTPUT_LIMIT, OutputCapper, cap_output
from punie.runtime.tools.sandbox import Sandbox, detect_sandbox
from punie.runtime.tools.search import find_ripgrep, grep
from punie.runtime.tools.workspace import Workspace

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
