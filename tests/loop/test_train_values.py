"""The demo's trainer settings: the training seed apart from the data seed."""

from __future__ import annotations

from pathlib import Path

from punie.loop.demo import DemoConfig, train_values
from punie.mlx.train.config import make_config


def data_folder(tmp_path: Path, rows: int) -> Path:
    (tmp_path / "train.jsonl").write_text('{"messages": []}\n' * rows, encoding="utf-8")
    return tmp_path


def test_the_training_seed_defaults_to_the_data_seed_and_can_be_set_apart(tmp_path: Path) -> None:
    data = str(data_folder(tmp_path, 10))
    model = tmp_path / "model"
    default = train_values(DemoConfig(seed=5), data, model, "punie")
    apart = train_values(DemoConfig(seed=5, train_seed=3), data, model, "punie")
    assert default["seed"] == 5
    assert apart["seed"] == 3
    # Nothing else moves, so a seed sweep changes one thing.
    assert {k: v for k, v in default.items() if k != "seed"} == {
        k: v for k, v in apart.items() if k != "seed"
    }
    config = make_config({**apart, "adapter_path": str(tmp_path / "adapter")})
    assert config.seed == 3


def test_the_frozen_layers_are_cached_only_when_the_steps_draw_more_examples_than_rows(
    tmp_path: Path,
) -> None:
    model = tmp_path / "model"
    long_run = train_values(
        DemoConfig(iters=80, batch_size=4), str(data_folder(tmp_path, 100)), model, "punie"
    )
    assert long_run["cache_frozen_layers"] is True
    smoke_run = train_values(
        DemoConfig(iters=2, batch_size=4), str(data_folder(tmp_path, 100)), model, "punie"
    )
    assert smoke_run["cache_frozen_layers"] is False
