"""Files Punie ships beside its code: the eval suites (`eval/`) and the public rows (`datasets/`).

In a wheel they live inside the package (`punie/_shipped/`, put there by hatch's
`force-include`); in a source checkout they are the repository's top-level `eval/` and
`datasets/` folders, as the user asked for. This module is the one place that knows both.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from punie.errors import DataError

SHIPPED_FOLDERS = ("eval", "datasets")


def shipped_path(folder: str, *parts: str) -> Path:
    """The path of a shipped folder or file, e.g. `shipped_path("eval", "bookshelf.jsonl")`.

    Raises DataError naming what is missing when neither the installed package nor a source
    checkout holds it.
    """
    if folder not in SHIPPED_FOLDERS:
        raise DataError(f"unknown shipped folder {folder!r}; choose one of {SHIPPED_FOLDERS}")
    packaged = Path(str(resources.files("punie"))) / "_shipped" / folder
    checkout = Path(__file__).resolve().parent.parent / folder
    for base in (packaged, checkout):
        if base.is_dir():
            path = base.joinpath(*parts)
            if path.exists():
                return path
    wanted = "/".join((folder, *parts))
    raise DataError(
        f"shipped file {wanted} not found in the installed package ({packaged}) or a source "
        f"checkout ({checkout}); reinstall punie or run from a full clone"
    )
