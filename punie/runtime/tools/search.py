"""`grep`: ripgrep over the workspace, answering in ``path:line: text`` lines."""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import structlog

from punie.errors import ToolError
from punie.process_group import signal_group
from punie.records.tool_result import ErrorKind, ResultKind, ToolResult
from punie.runtime.tools.fence import kind_of
from punie.runtime.tools.output import DEFAULT_OUTPUT_LIMIT, cap_output
from punie.runtime.tools.processes import RUNNING, RunningCommands
from punie.runtime.tools.sandbox import Sandbox, default_sandbox
from punie.runtime.tools.workspace import Workspace

log = structlog.get_logger(__name__)

_HIT = re.compile(r"^(?P<path>[^\n:]+):(?P<line>\d+): ", re.MULTILINE)
_LINE_CHARS = 300  # a minified file's one line must not fill the whole answer
_TIMEOUT_S = 30.0


def find_ripgrep() -> str:
    """The `rg` binary of PyPI's `ripgrep` package: beside the interpreter, else on PATH."""
    beside = Path(sys.executable).parent / ("rg.exe" if sys.platform == "win32" else "rg")
    if beside.is_file():
        return str(beside)
    found = shutil.which("rg")
    if found is None:
        raise ToolError(
            f"ripgrep (rg) was not found beside {sys.executable} nor on PATH: "
            "install the 'ripgrep' package (uv sync) to use grep"
        )
    return found


def _text(field: dict) -> str:
    """A ripgrep JSON text field, which holds `text` or base64 `bytes` for non-UTF-8 data."""
    if "text" in field:
        return field["text"]
    return "<non-UTF-8 bytes>"


MAX_PATTERN_CHARS = 10_000
_MAX_JSON_LINE = 8 * 1024 * 1024  # a longer ripgrep message (one huge line) is skipped


def _check(pattern: str, glob: str | None, max_matches: int) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise ToolError("grep got an empty pattern: pass a regular expression to search for")
    for name, value in (("pattern", pattern), ("glob", glob or "")):
        if "\x00" in value:
            raise ToolError(f"grep {name} contains a NUL byte: send plain text")
        if len(value) > MAX_PATTERN_CHARS:
            raise ToolError(
                f"grep {name} is {len(value):,} characters long: at most {MAX_PATTERN_CHARS:,}"
            )
    if max_matches < 1:
        raise ToolError(f"grep max_matches must be at least 1, got {max_matches}")


def grep(
    ws: Workspace,
    pattern: str,
    path: str = ".",
    *,
    glob: str | None = None,
    ignore_case: bool = False,
    max_matches: int = 200,
    sandbox: Sandbox | None = None,
    running: RunningCommands | None = None,
    timeout_s: float = _TIMEOUT_S,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
) -> ToolResult:
    """Search files under `path` for the regular expression `pattern` (Rust regex syntax).

    Answers one ``path:line: text`` line per matching line, paths relative to the root;
    respects .gitignore and skips hidden files like ripgrep does; `glob` narrows the files
    (e.g. ``"*.py"``). Sorted by path, so the answer is the same every time; stops after
    `max_matches` lines and says so. ripgrep runs in the sandbox when one works, never past
    `timeout_s`, and never on a FIFO, device or socket.
    """
    _check(pattern, glob, max_matches)
    with ws.walk(path) as walked:
        rel = walked.relative
        if walked.name is not None and walked.st is None:
            raise ToolError(
                f"path {path[:200]!r} does not exist in this repository: "
                "check the name, or list files with run_command('ls')",
                ErrorKind.NOT_FOUND,
            )
        if walked.st is not None and not (
            stat.S_ISREG(walked.st.st_mode) or stat.S_ISDIR(walked.st.st_mode)
        ):
            raise ToolError(
                f"{rel!r} is a {kind_of(walked.st)}, not a file or folder: grep searches files"
            )
    rg = find_ripgrep()
    # Ignore files above the workspace root are not the repository's own rules (a uv
    # `.venv/.gitignore` holding `*` would hide every installed package's source).
    argv = [
        rg, "--json", "--no-config", "--no-ignore-parent", "--sort=path",
        "--regexp", pattern,
    ]  # fmt: skip
    if ignore_case:
        argv.append("--ignore-case")
    if glob:
        argv += ["--glob", glob]
    argv += ["--", rel]
    sandbox = sandbox if sandbox is not None else default_sandbox()
    if not sandbox.confining:  # grep only reads: without a sandbox it still runs, fenced
        sandbox = Sandbox.unsandboxed("grep")
    with tempfile.TemporaryDirectory(prefix="punie-rg-") as scratch:
        argv, env = sandbox.command(argv, ws.root, Path(scratch), extra=[Path(rg).parent])
        lines, stopped, stderr, code, timed_out = _run_rg(
            argv, env, ws.root, max_matches, timeout_s, running
        )
    if timed_out:
        raise ToolError(
            f"grep for {pattern[:200]!r} in {rel!r} took over {timeout_s:g} s: narrow the path "
            "or glob"
        )
    log.info(
        "grep_done", pattern=pattern[:200], path=rel, glob=glob, matches=len(lines),
        stopped=stopped, sandbox=sandbox.kind,
    )  # fmt: skip
    if not stopped and code == 2 and not lines:
        message = stderr.strip()[:2000]
        if "regex parse error" in message or "error parsing" in message:
            raise ToolError(
                f"grep pattern {pattern[:200]!r} is not a valid regular expression: {message}\n"
                "Escape special characters with a backslash (e.g. '\\(') or fix the pattern.",
                ErrorKind.BAD_PATTERN,
            )
        raise ToolError(f"grep for {pattern[:200]!r} in {rel!r} failed: {message}")
    where = f" in {rel!r}" + (f" (files matching {glob!r})" if glob else "")
    if not lines:
        return ToolResult(f"no matches for {pattern!r}{where}", ResultKind.NO_MATCHES)
    answer = "\n".join(lines)
    if stopped:
        answer += (
            f"\n[stopped at {max_matches} matching lines; narrow the pattern, path or glob "
            "to see the rest]"
        )
    capped = cap_output(answer, output_limit)
    hits = [(m["path"], int(m["line"])) for m in _HIT.finditer(capped)]
    truncated = stopped or len(capped) < len(answer)
    return ToolResult(capped, ResultKind.MATCHES, hits=hits, truncated=truncated)


def _match_line(raw: bytes) -> str | None:
    """One ``path:line: text`` line from a ripgrep JSON message, or None."""
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if message.get("type") != "match":
        return None
    data = message["data"]
    shown = _text(data["path"]).removeprefix("./")
    text = _text(data["lines"]).rstrip("\r\n")
    if len(text) > _LINE_CHARS:
        text = text[:_LINE_CHARS] + " [...line cut]"
    return f"{shown}:{data['line_number']}: {text}"


def _run_rg(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    max_matches: int,
    timeout_s: float,
    running: RunningCommands | None,
) -> tuple[list[str], bool, str, int | None, bool]:
    """Run ripgrep under a deadline; (lines, stopped, stderr, exit code, timed out)."""
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise ToolError(f"could not start ripgrep: {exc}") from None
    registries = [RUNNING] + ([running] if running is not None else [])
    for registry in registries:
        registry.add(proc.pid)
    lines: list[str] = []
    stopped = timed_out = False
    errors = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        assert proc.stdout is not None and proc.stderr is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            selector.register(proc.stderr, selectors.EVENT_READ)
            pending = bytearray()
            skipping = False
            open_streams = 2
            while open_streams and not stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                for key, _ in selector.select(min(left, 0.2)):
                    chunk = os.read(key.fd, 65_536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        open_streams -= 1
                        continue
                    if key.fileobj is proc.stderr:
                        errors += chunk[: max(0, 20_000 - len(errors))]
                        continue
                    pending += chunk
                    while (newline := pending.find(b"\n")) >= 0:
                        raw = bytes(pending[:newline])
                        del pending[: newline + 1]
                        if skipping:
                            skipping = False
                            continue
                        line = _match_line(raw)
                        if line is not None:
                            lines.append(line)
                            if len(lines) >= max_matches:
                                stopped = True  # enough: rg need not walk the rest
                                break
                    if len(pending) > _MAX_JSON_LINE:
                        pending.clear()
                        skipping = True
                    if stopped:
                        break
    finally:
        signal_group(proc.pid)
        code = proc.wait()
        for registry in registries:
            registry.discard(proc.pid)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return lines, stopped, errors.decode("utf-8", "replace"), code, timed_out
