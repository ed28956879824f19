"""`run_command`: a shell command in the workspace, with a timeout that kills its whole process
group and an output cap, optionally inside the bubblewrap sandbox."""

from __future__ import annotations

import codecs
import os
import selectors
import signal
import subprocess
import time

import structlog

from punie.errors import ToolError
from punie.runtime.tools.output import DEFAULT_OUTPUT_LIMIT, OutputCapper
from punie.runtime.tools.sandbox import Sandbox
from punie.runtime.tools.workspace import Workspace

log = structlog.get_logger(__name__)

_READ_SIZE = 65_536
_POLL_S = 0.1
_DRAIN_AFTER_EXIT_S = 0.5  # how long output left by background children is still read


def _kill_group(pgid: int) -> bool:
    """SIGKILL every process in the group; whether any was still there."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    except PermissionError:  # only a reused group id of someone else's processes; leave it
        return False
    return True


def run_command(
    ws: Workspace,
    command: str,
    *,
    timeout_s: float = 30.0,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
    sandbox: Sandbox | None = None,
) -> str:
    """Run `command` with `bash -c` in the workspace root and return
    ``"exit code: N\\n<stdout and stderr, interleaved>"``, capped to `output_limit` characters.

    The command gets its own process group; past `timeout_s` the whole group (children too) is
    killed and the result says so. Background processes still running when the command exits
    are killed too. Output is read as it comes, so a huge output never sits whole in memory.
    """
    if not command.strip():
        raise ToolError("run_command got an empty command: pass a shell command such as 'ls'")
    if timeout_s <= 0:
        raise ToolError(f"run_command timeout_s must be positive, got {timeout_s}")
    argv = ["bash", "-c", command]
    sandbox_kind = "none"
    if sandbox is not None:
        if sandbox.available:
            argv = sandbox.wrap(argv, ws.root)
            sandbox_kind = sandbox.kind
        else:
            log.warning("command_unsandboxed", reason=sandbox.reason)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=ws.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise ToolError(f"could not start {argv[0]!r} to run {command!r}: {exc}") from exc
    assert proc.stdout is not None
    capper = OutputCapper(output_limit)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    deadline = started + timeout_s
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
                leftovers_killed = _kill_group(proc.pid) and not timed_out
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > _DRAIN_AFTER_EXIT_S:
                # A background child still holds the pipe open: stop it, keep what it wrote.
                leftovers_killed = _kill_group(proc.pid)
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
            _kill_group(proc.pid)
        else:  # children that outlive bash in its group are not wanted
            leftovers_killed = _kill_group(proc.pid) or leftovers_killed
    returncode = proc.wait()
    duration_ms = round((time.monotonic() - started) * 1000)
    log.info(
        "command_finished",
        command=command,
        exit_code=None if timed_out else returncode,
        timed_out=timed_out,
        duration_ms=duration_ms,
        output_chars=capper.total,
        truncated=capper.truncated,
        sandbox=sandbox_kind,
    )
    if timed_out:
        header = (
            f"exit code: none (timed out after {timeout_s:g} s; the command and all its child "
            "processes were killed)"
        )
    else:
        header = f"exit code: {returncode}"
        if leftovers_killed:
            header += " (background processes it left running were killed)"
    return f"{header}\n{capper.text()}"
