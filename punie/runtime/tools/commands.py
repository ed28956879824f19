"""`run_command`: a shell command in the workspace, inside the sandbox, with a scrubbed
environment, a timeout that kills its whole process group and an output cap."""

from __future__ import annotations

import codecs
import os
import selectors
import subprocess
import tempfile
import time
from pathlib import Path

import structlog

from punie.errors import ToolError
from punie.process_group import signal_group
from punie.records.tool_result import ResultKind, ToolResult
from punie.runtime.tools.output import DEFAULT_OUTPUT_LIMIT, OutputCapper
from punie.runtime.tools.processes import RUNNING, RunningCommands
from punie.runtime.tools.sandbox import HOW_TO_GET_ONE, Sandbox, default_sandbox
from punie.runtime.tools.workspace import Workspace

log = structlog.get_logger(__name__)

_READ_SIZE = 65_536
_POLL_S = 0.1
_DRAIN_AFTER_EXIT_S = 0.5  # how long output left by background children is still read
MAX_COMMAND_CHARS = 100_000


def _check(command: str, timeout_s: float) -> None:
    if not isinstance(command, str):
        raise ToolError(f"run_command needs a command string, got {type(command).__name__}")
    if not command.strip():
        raise ToolError("run_command got an empty command: pass a shell command such as 'ls'")
    if "\x00" in command:
        raise ToolError("run_command got a command with a NUL byte: send plain shell text")
    if len(command) > MAX_COMMAND_CHARS:
        raise ToolError(
            f"run_command got a {len(command):,}-character command: at most "
            f"{MAX_COMMAND_CHARS:,}; write a script with write_file and run that"
        )
    if not timeout_s > 0:
        raise ToolError(f"run_command timeout_s must be positive, got {timeout_s}")


def run_command(
    ws: Workspace,
    command: str,
    *,
    timeout_s: float = 30.0,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
    sandbox: Sandbox | None = None,
    running: RunningCommands | None = None,
) -> ToolResult:
    """Run `command` with `bash -c` in the workspace root and return
    ``"exit code: N\\n<stdout and stderr, interleaved>"``, capped to `output_limit` characters.

    It runs in `sandbox` (default: `default_sandbox()`); with no sandbox and no opt-in it is
    refused. The environment is an allow-list (PATH, HOME, locale, TERM): no keys or tokens.
    The command gets its own process group; past `timeout_s` the whole group (children too) is
    killed and the result says so, as are background processes left when it exits. `running`
    (and the process-wide registry) lets a signal handler kill it at once.
    """
    _check(command, timeout_s)
    sandbox = sandbox if sandbox is not None else default_sandbox()
    if not sandbox.available:
        log.warning("command_refused", reason=sandbox.reason)
        raise ToolError(
            f"run_command is refused: no sandbox to run commands in ({sandbox.reason}). "
            f"To enable it: {HOW_TO_GET_ONE}"
        )
    with tempfile.TemporaryDirectory(prefix="punie-cmd-") as scratch:
        argv, env = sandbox.command(["bash", "-c", command], ws.root, Path(scratch))
        return _run(ws, command, argv, env, timeout_s, output_limit, sandbox, running)


def _run(
    ws: Workspace,
    command: str,
    argv: list[str],
    env: dict[str, str],
    timeout_s: float,
    output_limit: int,
    sandbox: Sandbox,
    running: RunningCommands | None,
) -> ToolResult:
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=ws.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:
        raise ToolError(f"could not start {argv[0]!r} to run the command: {exc}") from None
    registries = [RUNNING] + ([running] if running is not None else [])
    for registry in registries:
        registry.add(proc.pid)
    try:
        deadline = started + timeout_s
        timed_out, leftovers_killed, text, capper = _collect(proc, deadline, output_limit)
    finally:
        signal_group(proc.pid)
        proc.wait()
        killed_for = [r.discard(proc.pid) for r in registries]
    interrupted = next((why for why in killed_for if why), None)
    returncode = proc.returncode
    duration_ms = round((time.monotonic() - started) * 1000)
    log.info(
        "command_finished",
        command=command[:500],
        exit_code=None if timed_out or interrupted else returncode,
        timed_out=timed_out,
        interrupted=interrupted,
        duration_ms=duration_ms,
        output_chars=capper.total,
        truncated=capper.truncated,
        sandbox=sandbox.kind,
    )
    exit_code: int | None = None
    if interrupted:
        header = (
            f"exit code: none ({interrupted}; the command and all its child processes were killed)"
        )
    elif timed_out:
        header = (
            f"exit code: none (timed out after {timeout_s:g} s; the command and all its child "
            "processes were killed)"
        )
    else:
        exit_code = returncode
        header = f"exit code: {returncode}"
        if leftovers_killed:
            header += " (background processes it left running were killed)"
    return ToolResult(
        f"{header}\n{text}",
        ResultKind.COMMAND,
        exit_code=exit_code,
        output=text,
        truncated=capper.truncated,
    )


def _collect(
    proc: subprocess.Popen[bytes], deadline: float, output_limit: int
) -> tuple[bool, bool, str, OutputCapper]:
    """Read the command's output until it ends or the deadline; kill leftovers."""
    assert proc.stdout is not None
    capper = OutputCapper(output_limit)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    timed_out = False
    leftovers_killed = False
    exited_at: float | None = None
    with proc.stdout, selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        fd = proc.stdout.fileno()
        while True:
            now = time.monotonic()
            if now >= deadline:
                timed_out = exited_at is None
                leftovers_killed = signal_group(proc.pid) and not timed_out
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > _DRAIN_AFTER_EXIT_S:
                # A background child still holds the pipe open: stop it, keep what it wrote.
                leftovers_killed = signal_group(proc.pid)
                break
            if not selector.select(min(_POLL_S, deadline - now)):
                continue
            chunk = os.read(fd, _READ_SIZE)
            if not chunk:
                break
            capper.feed(decoder.decode(chunk))
        capper.feed(decoder.decode(b"", final=True))
    if not timed_out:
        try:  # EOF can come before the exit (the command closed its output)
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            signal_group(proc.pid)
        else:  # children that outlive bash in its group are not wanted
            leftovers_killed = signal_group(proc.pid) or leftovers_killed
    return timed_out, leftovers_killed, capper.text(), capper
