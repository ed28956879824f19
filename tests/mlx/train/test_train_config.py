"""Bad training configurations fail before training, with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from punie.errors import ConfigError
from punie.mlx.train.config import load_config, make_config, resolve


def write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_yaml_keys_match_mlx_lm_and_flags_override(tmp_path, data_dir):
    path = write_yaml(
        tmp_path / "c.yaml",
        {"data": str(data_dir), "iters": 50, "learning_rate": 1e-4,
         "lora_parameters": {"rank": 4}, "train": True},
    )  # fmt: skip
    config = load_config(path, {"iters": 7, "rank": 16, "batch_size": None})
    assert config.iters == 7
    assert config.learning_rate == 1e-4
    assert config.batch_size == 4  # unset flag: the file's or the default value stands
    assert config.lora_parameters == {"rank": 16, "dropout": 0.0, "scale": 20.0}
    assert config.recipe.value == "punie"


def test_example_config_is_valid():
    path = Path(__file__).resolve().parents[3] / "examples" / "train_config.yaml"
    config = load_config(path)
    assert config.num_layers <= 30 and config.recipe.value == "punie"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"data": "x", "learnig_rate": 1e-4}, "'learnig_rate'"),
        ({"iters": 3}, "'data'"),
        ({"data": "x", "iters": 0}, "'iters'"),
        ({"data": "x", "recipe": "magic"}, "'recipe'"),
        ({"data": "x", "fine_tune_type": "qlora"}, "'fine_tune_type'"),
        ({"data": "x", "answer_weight": 0}, "'answer_weight'"),
        ({"data": "x", "lora_parameters": {"rank": 0}}, "'lora_parameters.rank'"),
        ({"data": "x", "mask_prompt": True}, "'mask_prompt'"),
    ],
)
def test_bad_values_name_the_key(values, key):
    with pytest.raises(ConfigError) as info:
        make_config(values)
    message = str(info.value)
    assert key in message and "\n" not in message


def test_missing_split_names_data_and_the_file(data_dir):
    (data_dir / "valid.jsonl").unlink()
    with pytest.raises(ConfigError, match=r"key 'data': split 'valid' is missing"):
        resolve(make_config({"data": str(data_dir)}))


def test_more_layers_than_the_model_has(data_dir, model_dir):
    with pytest.raises(ConfigError, match=r"key 'num_layers': 31 .* \(30\)"):
        resolve(make_config({"data": str(data_dir), "model": str(model_dir), "num_layers": 31}))
    assert resolve(make_config({"data": str(data_dir), "num_layers": 30})).model_layers == 30


def test_model_folder_without_config(tmp_path, data_dir):
    (tmp_path / "m").mkdir()
    with pytest.raises(ConfigError, match="key 'model'"):
        resolve(make_config({"data": str(data_dir), "model": str(tmp_path / "m")}))


def test_cli_prints_one_red_line(tmp_path, data_dir):
    import subprocess
    import sys

    path = write_yaml(tmp_path / "c.yaml", {"data": str(data_dir), "num_layer": 2})
    done = subprocess.run(
        [sys.executable, "-m", "punie", "train", "-c", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown key 'num_layer'" in lines[0]
