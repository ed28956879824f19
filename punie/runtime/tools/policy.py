"""Which paths of a repository no tool may change: its control paths.

Writing them runs code on the host at the user's next ordinary action: `.git/config` with
`core.fsmonitor` at `git status`, a hook at commit, a `.pth` file in `.venv` at the next
`python`, editor task files when the folder is opened. Tools may read them.
"""

from __future__ import annotations

from pathlib import PurePosixPath

CONTROL_NAMES: tuple[str, ...] = (".git", ".hg", ".svn", ".jj", ".venv", ".vscode", ".idea")
"""Top-level entries of the repository that are read-only to every tool and command."""

_ANYWHERE = frozenset({".git"})  # a nested repository or submodule is as dangerous


def control_path(relative: str) -> str | None:
    """The control path that `relative` (a '/'-separated path inside the root) lies in, if any.

    Compared case-insensitively: on macOS `.GIT/config` is `.git/config`.
    """
    parts = [p for p in PurePosixPath(relative).parts if p not in {"", "."}]
    if not parts:
        return None
    names = {name.casefold() for name in CONTROL_NAMES}
    if parts[0].casefold() in names:
        return parts[0]
    for index, part in enumerate(parts):
        if part.casefold() in _ANYWHERE:
            return "/".join(parts[: index + 1])
    return None
