"""Cached stages (the demo's and the experiment's) and the default-adapter registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from punie.errors import ConfigError, ServerError
from punie.loop.stages import Stages, code_digest, package_source
from punie.mlx.adapters import latest_adapter, remember_adapter


def test_a_stage_runs_once_per_inputs_and_rebuilds_when_they_change(tmp_path: Path) -> None:
    stages = Stages(tmp_path, console=Console(quiet=True))
    built: list[int] = []

    def build(folder: Path) -> dict:
        built.append(1)
        (folder / "out.txt").write_text(str(len(built)))
        return {"n": len(built)}

    assert stages.run("s", {"k": 1}, build) == {"n": 1}
    assert stages.run("s", {"k": 1}, build) == {"n": 1}
    assert stages.reused == ["s"]
    assert stages.run("s", {"k": 2}, build) == {"n": 2}
    assert (tmp_path / "s" / "out.txt").read_text() == "2"
    assert len(built) == 2


def test_an_interrupted_stage_keeps_its_folder_for_resuming(tmp_path: Path) -> None:
    stages = Stages(tmp_path, console=Console(quiet=True))

    def crash(folder: Path) -> dict:
        (folder / "partial.bin").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stages.run("train", {"iters": 3}, crash)
    seen: list[bool] = []

    def resume(folder: Path) -> dict:
        seen.append((folder / "partial.bin").exists())
        return {}

    stages.run("train", {"iters": 3}, resume)
    assert seen == [True]


def test_a_failed_stage_names_itself_and_is_built_again(tmp_path: Path) -> None:
    stages = Stages(tmp_path, console=Console(quiet=True))

    def dead_server(folder: Path) -> dict:
        raise ServerError("the mlx-lm server (pid 7) was killed by SIGKILL")

    with pytest.raises(ServerError, match=r"^stage 'eval' failed: the mlx-lm server \(pid 7\)"):
        stages.run("eval", {"k": 1}, dead_server)
    assert not (tmp_path / "eval" / ".stage.json").exists()
    assert stages.run("eval", {"k": 1}, lambda folder: {"ok": True}) == {"ok": True}
    assert stages.ran == ["eval"]


def test_package_source_finds_installed_packages_and_names_missing_ones() -> None:
    assert (package_source("anyio") / "__init__.py").is_file()
    with pytest.raises(ConfigError, match="no_such_pkg_xyz"):
        package_source("no_such_pkg_xyz")


def test_the_newest_adapter_is_remembered_per_model(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    assert latest_adapter(model, data_dir=tmp_path) is None
    remember_adapter(adapter, model, data_dir=tmp_path)
    assert latest_adapter(model, data_dir=tmp_path) is None  # no adapter_config.json: not one
    (adapter / "adapter_config.json").write_text(json.dumps({"fine_tune_type": "lora"}))
    assert latest_adapter(model, data_dir=tmp_path) == adapter.resolve()
    other = tmp_path / "other-model"
    other.mkdir()
    assert latest_adapter(other, data_dir=tmp_path) is None


def test_code_digest_changes_with_the_source(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "digestpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "stage.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_digest("digestpkg")
    assert code_digest("digestpkg") == before
    (package / "stage.py").write_text("X = 2\n")
    assert code_digest("digestpkg") != before
    assert code_digest("digestpkg.stage") != before
