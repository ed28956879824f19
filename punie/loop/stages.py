"""The loop's stages as cached steps: build data, train, evaluate, harvest.

`punie demo` and `punie experiment recipes` are both sequences of these. A stage records a
fingerprint of its inputs beside its outputs; run again with the same inputs, it is skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog
from pydantic import BaseModel

from punie.errors import ConfigError, PunieError
from punie.progress import Console

log = structlog.get_logger(__name__)
T = TypeVar("T")

_STAGE_FILE = ".stage.json"


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class Stages:
    """Runs named stages in a work folder, skipping those whose inputs have not changed."""

    workdir: Path
    console: Console = field(default_factory=Console)
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    """Per stage run or reused: how long its build took (when it was built)."""

    def run(
        self,
        name: str,
        inputs: dict[str, Any],
        build: Callable[[Path], dict[str, Any]],
    ) -> dict[str, Any]:
        """Build stage `name` into its folder unless a previous build had the same inputs.

        `build(folder)` returns a JSON-able summary; it is stored and returned on reuse. A build
        that fails with a PunieError fails the stage: the error is raised again naming the stage,
        and nothing is stored, so the next run builds it again.
        """
        folder = self.workdir / name
        stamp = folder / _STAGE_FILE
        key = fingerprint(name, inputs)
        if stamp.is_file():
            previous = json.loads(stamp.read_text())
            if previous.get("fingerprint") == key:
                self.console.print(f"[green]✓[/] {name} [dim](reused {folder})[/]")
                self.reused.append(name)
                self.seconds[name] = float(previous.get("seconds") or 0.0)
                return previous["summary"]
            # Built before from other inputs: stale. (A folder with no stamp is an
            # interrupted build, kept so that training can resume.)
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.console.rule(f"[bold]{name}")
        started = time.perf_counter()
        try:
            summary = build(folder)
        except PunieError as exc:
            log.error("stage_failed", stage=name, folder=str(folder), error=str(exc))
            raise type(exc)(f"stage {name!r} failed: {exc}") from None
        seconds = round(time.perf_counter() - started, 1)
        self.seconds[name] = seconds
        stamp.write_text(
            json.dumps(
                {"fingerprint": key, "inputs": inputs, "summary": summary, "seconds": seconds},
                default=str,
            )
        )
        self.ran.append(name)
        self.console.print(f"[green]✓[/] {name} built in {seconds / 60:.1f} min", highlight=False)
        log.info("stage_built", stage=name, folder=str(folder), seconds=seconds)
        return summary


def code_digest(*modules: str) -> str:
    """A hash of the source files of Punie modules or packages, so a stage whose code changed
    is rebuilt (`"punie.mlx.train"` covers the whole package)."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ConfigError(f"module {name!r} not found")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for file in files:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def content_digest(*paths: Path | str) -> str:
    """A hash of files' contents (a missing file counts as absent), so a stage whose input
    files were rebuilt in place at the same path is rebuilt too."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        digest.update(f"{path.name}\0".encode())
        if path.is_file():
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(b"\0absent")
    return digest.hexdigest()[:16]


def package_source(name: str) -> Path:
    """The source folder of an installed package (real code nobody here wrote)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"package {name!r} is not installed as a source package: pick one that is "
            "(for example rich, anyio, structlog, typer, click, httpx)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


class SupportsToDict(Protocol):
    """The reports of the data and training stages (dataclasses with a `to_dict()`)."""

    def to_dict(self) -> dict[str, Any]: ...


def as_json(value: BaseModel | SupportsToDict) -> Any:
    """A stage's result as JSON-able data: a pydantic model, or a report with `to_dict()`."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return json.loads(json.dumps(value.to_dict(), default=str))
