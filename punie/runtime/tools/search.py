"""`grep`: ripgrep over the workspace, answering in ``path:line: text`` lines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import structlog

from punie.errors import ToolError
from punie.runtime.tools.output import DEFAULT_OUTPUT_LIMIT, cap_output
from punie.runtime.tools.workspace import Workspace

log = structlog.get_logger(__name__)

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


def grep(
    ws: Workspace,
    pattern: str,
    path: str = ".",
    *,
    glob: str | None = None,
    ignore_case: bool = False,
    max_matches: int = 200,
) -> str:
    """Search files under `path` for the regular expression `pattern` (Rust regex syntax).

    Answers one ``path:line: text`` line per matching line, paths relative to the root;
    respects .gitignore and skips hidden files like ripgrep does; `glob` narrows the files
    (e.g. ``"*.py"``). Sorted by path, so the answer is the same every time; stops after
    `max_matches` lines and says so.
    """
    if not pattern:
        raise ToolError("grep got an empty pattern: pass a regular expression to search for")
    if max_matches < 1:
        raise ToolError(f"grep max_matches must be at least 1, got {max_matches}")
    target = ws.resolve(path)
    rel = ws.relative(target)
    # Ignore files above the workspace root are not the repository's own rules (a uv
    # `.venv/.gitignore` holding `*` would hide every installed package's source).
    argv = [
        find_ripgrep(), "--json", "--no-config", "--no-ignore-parent", "--sort=path",
        "--regexp", pattern,
    ]  # fmt: skip
    if ignore_case:
        argv.append("--ignore-case")
    if glob:
        argv += ["--glob", glob]
    argv += ["--", rel]
    proc = subprocess.Popen(
        argv,
        cwd=ws.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    assert proc.stdout is not None
    lines: list[str] = []
    stopped = False
    for raw in proc.stdout:  # rg streams one JSON message per line
        message = json.loads(raw)
        if message["type"] != "match":
            continue
        data = message["data"]
        shown = _text(data["path"]).removeprefix("./")
        text = _text(data["lines"]).rstrip("\r\n")
        if len(text) > _LINE_CHARS:
            text = text[:_LINE_CHARS] + " [...line cut]"
        lines.append(f"{shown}:{data['line_number']}: {text}")
        if len(lines) >= max_matches:
            stopped = True
            proc.kill()  # enough: rg need not walk the rest of the tree
            break
    try:
        _, stderr = proc.communicate(timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise ToolError(
            f"grep for {pattern!r} in {rel!r} took over {_TIMEOUT_S:g} s: narrow the path or glob"
        ) from exc
    log.info("grep_done", pattern=pattern, path=rel, glob=glob, matches=len(lines), stopped=stopped)
    if not stopped and proc.returncode == 2 and not lines:
        message = stderr.strip()
        if "regex parse error" in message or "error parsing" in message:
            raise ToolError(
                f"grep pattern {pattern!r} is not a valid regular expression: {message}\n"
                "Escape special characters with a backslash (e.g. '\\(') or fix the pattern."
            )
        raise ToolError(f"grep for {pattern!r} in {rel!r} failed: {message}")
    where = f" in {rel!r}" + (f" (files matching {glob!r})" if glob else "")
    if not lines:
        return f"no matches for {pattern!r}{where}"
    answer = "\n".join(lines)
    if stopped:
        answer += (
            f"\n[stopped at {max_matches} matching lines; narrow the pattern, path or glob "
            "to see the rest]"
        )
    return cap_output(answer, DEFAULT_OUTPUT_LIMIT)
