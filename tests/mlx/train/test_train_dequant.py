"""The float32 copies of quantized layers (QLoRA on CPU), on real MLX-quantized layers; which
folders are quantized; and the config key, which does not change the run's fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from punie.errors import ModelImportError
from punie.mlx.quantize import quantization, quantize_copy
from punie.mlx.train.config import fingerprint, make_config, resolve


def tiny_quantized():
    import mlx.core as mx
    import mlx.nn as nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(256, 128)
            self.layers = [nn.Linear(128, 192), nn.Linear(192, 128, bias=False)]

        def __call__(self, tokens):
            h = self.embed(tokens)
            for layer in self.layers:
                h = layer(h)
            return self.embed.as_linear(h)

    mx.random.seed(0)
    model = Tiny()
    nn.quantize(model, group_size=64, bits=4)
    return model, mx.array([[1, 5, 9, 200]])


def test_dequantized_copies_compute_what_the_quantized_layers_do():
    import mlx.core as mx
    import mlx.nn as nn

    from punie.mlx.train.dequant import dequantize_base, float32_nbytes, quantized_modules

    model, tokens = tiny_quantized()
    modules = quantized_modules(model)
    assert len(modules) == 3
    assert float32_nbytes(modules) == 4 * (256 * 128 + 192 * 128 + 128 * 192)
    expected = model(tokens)
    done = dequantize_base(model, fine_tune_type="lora", available=2**30)
    assert done is not None and done.modules == 3
    assert not quantized_modules(model)
    assert isinstance(model.layers[0], nn.Linear) and "bias" in model.layers[0]
    assert "bias" not in model.layers[1]
    got = model(tokens)
    assert mx.abs(got - expected).max().item() <= 1e-5 * mx.abs(expected).max().item()


@pytest.mark.parametrize(
    ("fine_tune_type", "available"), [("full", 2**30), ("lora", 100_000)], ids=["full", "no-room"]
)
def test_quantized_layers_stay_for_full_fine_tuning_or_without_room(fine_tune_type, available):
    from punie.mlx.train.dequant import dequantize_base, quantized_modules

    model, _ = tiny_quantized()  # 4 * 81,920 bytes of copies: more than half of 100,000
    assert dequantize_base(model, fine_tune_type=fine_tune_type, available=available) is None
    assert len(quantized_modules(model)) == 3


def write_config(folder: Path, body: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(body), encoding="utf-8")
    return folder


def test_quantization_reads_the_config_block(tmp_path):
    block = {"group_size": 64, "bits": 4}
    assert quantization(write_config(tmp_path / "q", {"quantization": block})) == block
    nested = write_config(tmp_path / "vl", {"text_config": {"quantization": block}})
    assert quantization(nested) == block
    assert quantization(write_config(tmp_path / "f", {"model_type": "llama"})) is None
    with pytest.raises(ModelImportError, match=r"config\.json is unreadable"):
        quantization(tmp_path / "missing")


def test_quantize_copy_keeps_a_matching_copy_and_refuses_another(tmp_path):
    done = write_config(tmp_path / "q4", {"quantization": {"group_size": 64, "bits": 4}})
    assert quantize_copy(tmp_path / "src", done) == done  # nothing to convert
    with pytest.raises(ModelImportError, match="not a 8-bit copy"):
        quantize_copy(tmp_path / "src", done, bits=8)


def test_dequantize_base_is_on_by_default_and_not_in_the_fingerprint(data_dir, model_dir):
    values = {"data": str(data_dir), "model": str(model_dir)}
    on, off = make_config(values), make_config({**values, "dequantize_base": False})
    assert on.dequantize_base and not off.dequantize_base
    assert fingerprint(resolve(on))["digest"] == fingerprint(resolve(off))["digest"]
