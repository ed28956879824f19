"""Cached frozen layers: the same loss and LoRA gradients as the full model, and a cached training
run whose saved adapter mlx-lm loads with the loss the run reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from check_scripts import run_check_script
from conftest import plain_chat, tool_conversation, write_split

CHECK = Path(__file__).with_name("frozen_cache_check.py")

SHORT = tool_conversation("a.py", "X = 3\n", "It sets X to 3.")
LONG = tool_conversation(
    "pkg/long_module.py",
    "def double(x):\n    return x * 2\n\n\ndef triple(x):\n    return x * 3\n" * 3,
    "It defines double and triple three times over; the last definitions win.",
)
CHAT = plain_chat("What is 2 plus 2?", "2 plus 2 is 4.")


def run_check(
    tmp_path: Path, model_dir: Path, rows: list[dict], layers: int, fine_tune_type: str = "lora"
) -> dict:
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps(rows), encoding="utf-8")
    args = (str(model_dir), str(layers), str(rows_file), fine_tune_type)
    return run_check_script(CHECK, *args, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rows", "layers", "shares_prefix"),
    [((SHORT, LONG), 3, True), ((CHAT, LONG), 2, False)],
    ids=["shared-system-prompt", "no-shared-prefix"],
)
def test_cached_loss_and_lora_gradients_match_the_full_model(
    tmp_path, model_dir, rows, layers, shares_prefix
):
    report = run_check(tmp_path, model_dir, list(rows), layers)
    short, long = report["lengths"]
    assert short < long <= report["pad_width"]  # the shorter row is padded
    assert report["cut"] == 30 - layers
    assert (report["shared_prefix"] > 0) == shares_prefix
    assert report["cached_tokens"] == report["plain_tokens"] > 0
    assert report["cached_loss"] == pytest.approx(report["plain_loss"], rel=1e-5)
    assert len(report["grads"]) == layers * 7 * 2  # lora_a and lora_b of 7 projections a layer
    for grad in report["grads"]:
        assert grad["max"] > 0, grad["name"]
        assert grad["max_diff"] <= 1e-4 * grad["max"] + 1e-7, grad


@pytest.mark.slow
def test_cached_loss_and_full_fine_tune_gradients_match_the_full_model(tmp_path, model_dir):
    """A full fine-tune of the top layers leaves the bottom ones frozen: the cache applies."""
    report = run_check(tmp_path, model_dir, [SHORT, LONG], 2, "full")
    assert report["cut"] == 28
    assert report["shared_prefix"] > 0
    assert report["cached_loss"] == pytest.approx(report["plain_loss"], rel=1e-5)
    names = {g["name"] for g in report["grads"]}
    assert all(".28." in n or ".29." in n for n in names), names  # the top two layers only
    assert len(names) == 2 * 9  # 7 projections and 2 norms a layer, all trained
    for grad in report["grads"]:
        assert grad["max"] > 0, grad["name"]
        assert grad["max_diff"] <= 1e-4 * grad["max"] + 1e-7, grad


@pytest.mark.slow
def test_cached_run_saves_an_adapter_with_the_reported_loss(tmp_path, model_dir):
    from mlx_lm import load

    from punie.mlx.train import make_config, train
    from punie.mlx.train.batches import masked_loss, pack_batch
    from punie.mlx.train.masking import assistant_mask, end_of_turn_ids

    data = tmp_path / "data"
    data.mkdir()
    write_split(data / "train.jsonl", [SHORT, LONG])
    write_split(data / "valid.jsonl", [SHORT, LONG])
    result = train(
        make_config(
            {"data": str(data), "adapter_path": str(tmp_path / "adapter"), "num_layers": 4,
             "batch_size": 2, "iters": 2, "max_seq_length": 1024, "learning_rate": 1e-3,
             "steps_per_report": 1, "val_batches": -1, "cache_frozen_layers": True}
        ),
        progress=False,
    )  # fmt: skip
    import mlx.core as mx

    tuned, tokenizer = load(str(model_dir), adapter_path=str(result.adapter_dir))
    eot = end_of_turn_ids(tokenizer, ["<|im_end|>"])
    examples = [assistant_mask(tokenizer, r["messages"], r["tools"], eot) for r in (SHORT, LONG)]
    tokens, mask, _ = pack_batch(examples, 1024)
    loss, _ = masked_loss(tuned, mx.array(tokens), mx.array(mask))
    assert loss.item() == pytest.approx(result.final_valid_loss, rel=1e-3)


def _run(tmp_path: Path, name: str, learning_rate: float):
    from punie.mlx.train import make_config, train

    data = tmp_path / "data"
    if not data.is_dir():
        data.mkdir()
        write_split(data / "train.jsonl", [SHORT, LONG])
        write_split(data / "valid.jsonl", [LONG, CHAT])  # other rows: states of their own
    return train(
        make_config(
            {"data": str(data), "adapter_path": str(tmp_path / name), "num_layers": 4,
             "batch_size": 2, "iters": 2, "max_seq_length": 1024,
             "learning_rate": learning_rate, "steps_per_report": 1, "val_batches": -1,
             "cache_frozen_layers": True}
        ),
        progress=False,
    )  # fmt: skip


@pytest.mark.slow
def test_a_second_run_on_the_same_rows_reuses_the_stored_states(tmp_path, model_dir, monkeypatch):
    from punie.mlx.train.frozen_store import STORE_ENV

    store = tmp_path / "store"
    monkeypatch.setenv(STORE_ENV, str(store))
    first = _run(tmp_path, "first", 1e-3)
    assert first.frozen_cache_skipped_seconds == 0.0
    stored = sorted(store.glob("*.safetensors"))
    assert len(stored) == 2  # train and valid
    again = _run(tmp_path, "again", 1e-3)
    assert again.frozen_cache_skipped_seconds > 0.0  # built once, reused
    # The reused states train exactly as the built ones did.
    assert again.final_valid_loss == pytest.approx(first.final_valid_loss, rel=1e-5)
    other = _run(tmp_path, "other", 5e-3)
    assert other.frozen_cache_skipped_seconds > 0.0  # another learning rate, the same states
    assert other.final_valid_loss != pytest.approx(first.final_valid_loss, rel=1e-5)
    monkeypatch.setenv(STORE_ENV, "off")
    assert _run(tmp_path, "off", 1e-3).frozen_cache_skipped_seconds == 0.0


def test_stored_states_are_keyed_by_tokens_and_layers_and_a_bad_file_is_rebuilt(
    tmp_path, model_dir
):
    import mlx.core as mx

    from punie.mlx.train.frozen_cache import CachedSplit
    from punie.mlx.train.frozen_store import load_states, save_states, states_key
    from punie.mlx.train.masking import MaskedExample

    a = MaskedExample(tokens=(1, 2, 3, 4), mask=(False, False, True, True))
    b = MaskedExample(tokens=(1, 2, 3, 5), mask=(False, False, True, True))
    key = states_key(str(model_dir), 26, 1024, True, [a])
    assert key == states_key(str(model_dir), 26, 1024, True, [a])
    assert key != states_key(str(model_dir), 26, 1024, True, [b])
    assert key != states_key(str(model_dir), 22, 1024, True, [a])
    split = CachedSplit([a], mx.ones((2, 3)), [mx.zeros((2, 3))], computed_tokens=4)
    path = tmp_path / f"{key}.safetensors"
    assert save_states(path, split, build_seconds=1.5)
    loaded, seconds = load_states(path, [a], share_prefix=True)
    assert seconds == 1.5 and loaded.computed_tokens == 4
    assert mx.array_equal(loaded.prefix, split.prefix)
    assert load_states(path, [a, b], share_prefix=True) is None  # not the same rows
    path.write_bytes(b"not a safetensors file")
    assert load_states(path, [a], share_prefix=True) is None
