"""The code tools the agent calls: commands, search, file reading and writing, all fenced in
one workspace root; commands run in a sandbox or not at all (unless the user opts in)."""

from punie.runtime.tools.commands import run_command
from punie.runtime.tools.files import read_file, write_file
from punie.runtime.tools.output import DEFAULT_OUTPUT_LIMIT, OutputCapper, cap_output
from punie.runtime.tools.processes import RUNNING, RunningCommands
from punie.runtime.tools.sandbox import Sandbox, SandboxStatus, detect_sandbox, sandbox_status
from punie.runtime.tools.search import find_ripgrep, grep
from punie.runtime.tools.workspace import Workspace

__all__ = [
    "DEFAULT_OUTPUT_LIMIT",
    "RUNNING",
    "OutputCapper",
    "RunningCommands",
    "Sandbox",
    "SandboxStatus",
    "Workspace",
    "cap_output",
    "detect_sandbox",
    "find_ripgrep",
    "grep",
    "read_file",
    "run_command",
    "sandbox_status",
    "write_file",
]
