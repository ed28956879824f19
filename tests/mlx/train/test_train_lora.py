"""Real LoRA training on the embedded model through mlx-lm's trainer: tiny, but every part real."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import tool_conversation, write_split

from punie.errors import DataError
from punie.mlx.train import make_config, train
from punie.mlx.train.curves import read_points

pytestmark = pytest.mark.slow

ROW = tool_conversation("a.py", "X = 3\n", "It sets X to 3.")


def tiny(data: Path, adapter: Path, **extra: Any) -> dict[str, Any]:
    return {
        "data": str(data),
        "adapter_path": str(adapter),
        "num_layers": 2,
        "batch_size": 1,
        "max_seq_length": 512,
        "learning_rate": 1e-3,
        "steps_per_report": 1,
        "steps_per_eval": 100,
        "val_batches": 1,
        "save_every": 1,
        **extra,
    }


@pytest.fixture(scope="module")
def one_row_data(tmp_path_factory) -> Path:
    """The same one conversation as train and valid split: every step sees the same batch."""
    folder = tmp_path_factory.mktemp("one_row")
    write_split(folder / "train.jsonl", [ROW])
    write_split(folder / "valid.jsonl", [ROW])
    return folder


@pytest.fixture(scope="module")
def runs(one_row_data, tmp_path_factory):
    """Two steps, then the same run resumed to three."""
    adapter = tmp_path_factory.mktemp("runs") / "adapter"
    first = train(make_config(tiny(one_row_data, adapter, iters=2)), progress=False)
    second = train(make_config(tiny(one_row_data, adapter, iters=3)), progress=False)
    return first, second


def masked_loss_of(model: Any, tokenizer: Any) -> float:
    import mlx.core as mx

    from punie.mlx.train.batches import masked_loss, pack_batch
    from punie.mlx.train.masking import assistant_mask, end_of_turn_ids

    example = assistant_mask(
        tokenizer, ROW["messages"], ROW["tools"], end_of_turn_ids(tokenizer, ["<|im_end|>"])
    )
    tokens, mask, _ = pack_batch([example], 512)
    loss, _ = masked_loss(model, mx.array(tokens), mx.array(mask))
    return loss.item()


def test_adapter_trains_loads_and_lowers_the_loss(runs, model_dir):
    from mlx_lm import load

    first, second = runs
    adapter = first.adapter_dir
    for name in ("adapters.safetensors", "adapter_config.json", "fingerprint.json", "loss.png"):
        assert (adapter / name).is_file(), name
    assert first.steps == 2 and first.resumed_from == 0
    assert first.trained_tokens > 0 and first.processed_tokens > first.trained_tokens
    assert first.blas  # which BLAS trained it is recorded
    # (the resumed run in the fixture has since appended step 3 to the same log)
    train_losses = [p.loss for p in read_points(first.loss_jsonl) if p.split == "train"]
    assert len(train_losses) == 3 and train_losses[2] < train_losses[0], train_losses

    base, tokenizer = load(str(model_dir))
    tuned, _ = load(str(model_dir), adapter_path=str(adapter))
    before, after = masked_loss_of(base, tokenizer), masked_loss_of(tuned, tokenizer)
    assert after < before * 0.9, (before, after)
    # The folder now holds the resumed step-3 adapter; its loss is the one the run reported.
    assert after == pytest.approx(second.final_valid_loss, rel=1e-3)


def test_resume_continues_from_the_saved_step(runs):
    first, second = runs
    assert second.adapter_dir == first.adapter_dir
    assert second.resumed_from == 2 and second.steps == 3
    points = read_points(second.loss_jsonl)
    assert [p.iteration for p in points if p.split == "train"] == [1, 2, 3]
    state = json.loads((second.adapter_dir / "train_state.json").read_text())
    assert state["step"] == 3
    assert (second.adapter_dir / "0000003_adapters.safetensors").is_file()
    assert second.final_valid_loss < first.final_valid_loss


def test_resume_refuses_an_adapter_from_other_settings(runs, one_row_data):
    first, _ = runs
    config = make_config(tiny(one_row_data, first.adapter_dir, iters=4, learning_rate=1e-4))
    with pytest.raises(Exception, match=r"key .adapter_path.*fingerprint differs"):
        train(config, progress=False)


def test_fuse_writes_a_model_that_loads_and_generates(runs, tmp_path, model_dir):
    from mlx_lm import generate, load

    from punie.mlx.train.fuse import fuse

    _, second = runs
    out = fuse(second.adapter_dir, tmp_path / "fused")
    fused, tokenizer = load(str(out))
    tuned, _ = load(str(model_dir), adapter_path=str(second.adapter_dir))
    assert masked_loss_of(fused, tokenizer) == pytest.approx(
        masked_loss_of(tuned, tokenizer), rel=1e-3
    )
    prompt = tokenizer.apply_chat_template(
        ROW["messages"][:1], tools=ROW["tools"], add_generation_prompt=True
    )
    text = generate(fused, tokenizer, prompt, max_tokens=8)
    assert text.strip()


def test_seed_recipe_trains_on_every_token(one_row_data, tmp_path):
    result = train(
        make_config(tiny(one_row_data, tmp_path / "seed", iters=1, recipe="seed")),
        progress=False,
    )
    assert result.recipe == "seed" and result.steps == 1
    # Every token but the first is a target: user, system and tool tokens included.
    assert result.trained_tokens == result.processed_tokens - 1
    assert result.final_valid_loss is not None and (tmp_path / "seed" / "loss.png").is_file()


def test_row_that_does_not_render_fails_before_training(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    bad = {"messages": [{"role": "user", "content": {"not": "text"}},
                        {"role": "assistant", "content": "ok"}]}  # fmt: skip
    write_split(data / "train.jsonl", [ROW, bad])
    write_split(data / "valid.jsonl", [ROW])
    with pytest.raises(DataError) as info:
        train(make_config(tiny(data, tmp_path / "adapter", iters=1)), progress=False)
    message = str(info.value)
    assert f"{data / 'train.jsonl'}:2" in message and "chat template" in message
    assert "\n" not in message
    assert not (tmp_path / "adapter" / "adapters.safetensors").exists()
