"""QLoRA on the embedded model's real 4-bit copy (mlx-lm `convert -q`): the float32 copies of the
frozen base compute the quantized model's loss, and an adapter trained on them loads with mlx-lm on
the 4-bit folder, changes its output and gives the loss the run reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import plain_chat, rows, write_split

from punie.mlx.blas import child_env, choose_blas

pytestmark = pytest.mark.slow

CHECK = Path(__file__).with_name("quant_check.py")
SHORT = plain_chat("What is 2 plus 2?", "2 plus 2 is 4.")
LAYERS = 4


@pytest.fixture(scope="module")
def q4_dir(model_dir: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from punie.mlx.quantize import quantized_copy; print(quantized_copy(Path(sys.argv[1])))",
         str(model_dir)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


def test_quantized_copy_is_mlx_lm_4bit(q4_dir, model_dir):
    from punie.mlx.quantize import quantization

    assert quantization(q4_dir) == {"group_size": 64, "bits": 4, "mode": "affine"}
    assert quantization(model_dir) is None
    size = lambda d: sum(f.stat().st_size for f in d.glob("*.safetensors"))  # noqa: E731
    assert size(q4_dir) < size(model_dir) / 4


def test_float32_copies_compute_the_quantized_loss(tmp_path, q4_dir):
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps([SHORT, rows(2)[1]]), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(CHECK), str(q4_dir), str(rows_file)],
        env=child_env(choose_blas()), capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # 30 layers of 7 projections, and the (tied) embedding
    assert report["quantized_modules"] == report["dequantized_modules"] == 30 * 7 + 1
    assert report["left_quantized"] == 0
    assert report["full_fine_tune_kept"] and report["too_big_kept"]
    assert report["estimated_bytes"] == report["float32_weight_bytes"]
    assert report["dtypes"] == ["mlx.core.float32"]
    assert report["dequantized_loss"] == pytest.approx(report["quantized_loss"], rel=1e-4)


def masked_loss_of(model, tokenizer, batch: list[dict]) -> float:
    import mlx.core as mx

    from punie.mlx.train.batches import masked_loss, pack_batch
    from punie.mlx.train.masking import assistant_mask, end_of_turn_ids

    eot = end_of_turn_ids(tokenizer, ["<|im_end|>"])
    examples = [assistant_mask(tokenizer, r["messages"], r.get("tools"), eot) for r in batch]
    tokens, mask, _ = pack_batch(examples, 1024)
    return masked_loss(model, mx.array(tokens), mx.array(mask))[0].item()


def test_adapter_trained_on_4bit_loads_and_applies_on_the_4bit_folder(tmp_path, q4_dir):
    from mlx_lm import load

    from punie.mlx.train import make_config, train

    data = tmp_path / "data"
    data.mkdir()
    write_split(data / "train.jsonl", [*rows(3), SHORT])  # two with read_file tool calls
    valid = [SHORT, rows(2)[1]]  # short plain chats, also trained on
    write_split(data / "valid.jsonl", valid)
    result = train(
        make_config(
            {"data": str(data), "model": str(q4_dir), "adapter_path": str(tmp_path / "adapter"),
             "num_layers": LAYERS, "batch_size": 2, "iters": 3, "max_seq_length": 1024,
             "learning_rate": 3e-4, "steps_per_report": 1, "val_batches": -1,
             "cache_frozen_layers": True}
        ),
        progress=False,
    )  # fmt: skip
    assert result.dequantized_modules == 30 * 7 + 1  # trained on the float32 copies
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["model"] == str(q4_dir) and config["num_layers"] == LAYERS

    base, tokenizer = load(str(q4_dir))
    tuned, _ = load(str(q4_dir), adapter_path=str(result.adapter_dir))
    assert any("QuantizedLinear" in type(m).__name__ for _, m in tuned.named_modules())
    before, after = masked_loss_of(base, tokenizer, valid), masked_loss_of(tuned, tokenizer, valid)
    assert after < before - 0.05, (before, after)
    # Served through mlx-lm's quantized layers, the adapter gives the loss training measured.
    assert after == pytest.approx(result.final_valid_loss, rel=1e-3)
