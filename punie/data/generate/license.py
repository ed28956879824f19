"""The licence of the installed distribution a repository comes from, for the data card."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path


def package_license(repo: Path, repo_name: str) -> str:
    """The license of the installed distribution that provides `repo`, else "see repository"."""
    candidates = importlib.metadata.packages_distributions().get(Path(repo).name, [])
    candidates = candidates or importlib.metadata.packages_distributions().get(repo_name, [])
    for dist_name in candidates:
        try:
            meta = importlib.metadata.metadata(dist_name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for key in ("License-Expression", "License"):
            value = (meta.get(key) or "").strip()
            if value and len(value) < 80 and "\n" not in value:
                return value
        for classifier in meta.get_all("Classifier") or []:
            if classifier.startswith("License ::"):
                return classifier.rsplit("::", 1)[-1].strip()
    return "see repository"
