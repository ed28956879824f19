"""The earlier stack's configuration: the embedded weights served with eos `<|endoftext|>`.

Fast tests check the variant folder; the slow one serves it with a real `mlx_lm server` and
shows the runaway without stop sequences and the cut with Punie's.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from punie.errors import ConfigError
from punie.evaluation.overrun import invented_turn
from punie.mlx.embedded import embedded_model_dir
from punie.mlx.variants import eos_variant, token_id
from punie.records.profile import resolve_profile

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A private copy of the embedded folder (weights symlinked) and its eos variant."""
    source = embedded_model_dir()
    copy = tmp_path_factory.mktemp("models") / source.name
    copy.mkdir()
    for entry in source.iterdir():
        if entry.suffix == ".safetensors":
            (copy / entry.name).symlink_to(entry)
        else:
            (copy / entry.name).write_bytes(entry.read_bytes())
    return copy, eos_variant(copy)


def test_the_variant_changes_only_the_eos_and_links_the_weights(models) -> None:
    original, variant = models
    assert variant.parent == original.parent
    endoftext = token_id(original, "<|endoftext|>")
    assert endoftext != token_id(original, "<|im_end|>")
    for name in ("config.json", "generation_config.json"):
        assert json.loads((variant / name).read_text())["eos_token_id"] == endoftext
    config = json.loads((variant / "tokenizer_config.json").read_text())
    before = json.loads((original / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|endoftext|>" and before["eos_token"] == "<|im_end|>"
    assert {k: v for k, v in config.items() if k != "eos_token"} == {
        k: v for k, v in before.items() if k != "eos_token"
    }
    for name in ("model.safetensors", "tokenizer.json"):
        assert (variant / name).is_symlink()
        assert (variant / name).resolve() == (original / name).resolve()
    assert eos_variant(original) == variant  # built once, then reused


def test_punies_profile_of_the_variant_still_stops_at_im_end(models) -> None:
    _, variant = models
    profile = resolve_profile(model_dir=variant)
    assert profile.end_of_turn == ("<|im_end|>",)
    assert "<|im_end|>" in profile.stop_sequences and "<|endoftext|>" in profile.stop_sequences


def test_an_unknown_token_is_named(models) -> None:
    original, _ = models
    with pytest.raises(ConfigError, match="no-such-token"):
        eos_variant(original, "<no-such-token>")


def _chat(base_url: str, model: str, stop: list[str] | None) -> dict:
    body: dict = {"model": model, "messages": QUESTION, "max_tokens": 60, "temperature": 0.0}
    if stop is not None:
        body["stop"] = stop
    response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.slow
def test_served_without_stop_the_variant_runs_past_its_turn_and_stop_cuts_it(models) -> None:
    from punie.mlx.server import serve_model

    original, variant = models
    profile = resolve_profile(model_dir=variant)
    with serve_model(original) as server:
        # The embedded config: mlx-lm stops at its eos <|im_end|> whatever `stop` says.
        reply = _chat(server.base_url, server.request_model, None)
        assert reply["choices"][0]["finish_reason"] == "stop"
        assert "Paris" in reply["choices"][0]["message"]["content"]
        embedded_tokens = reply["usage"]["completion_tokens"]
    with serve_model(variant) as server:
        runaway = _chat(server.base_url, server.request_model, None)
        text = runaway["choices"][0]["message"]["content"]
        assert runaway["choices"][0]["finish_reason"] == "length"
        assert runaway["usage"]["completion_tokens"] == 60 > embedded_tokens
        answer, end, after = text.partition("<|im_end|>")
        assert "Paris" in answer and end and after.strip()
        assert invented_turn(text, profile.cut_markers)
        cut = _chat(server.base_url, server.request_model, list(profile.stop_sequences))
        assert cut["choices"][0]["finish_reason"] == "stop"
        content = cut["choices"][0]["message"]["content"]
        assert "Paris" in content and "<|im_end|>" not in content and "<|im_start|>" not in content
        assert cut["usage"]["completion_tokens"] <= embedded_tokens + 1


def test_the_recipes_table_shows_the_runaway_columns(tmp_path: Path) -> None:
    from punie.loop.experiment import recipes_table, write_chart

    runaway = {"termination_rate": 0.0, "clean_stop_rate": 0.0, "tool_call_rate": None,
               "argument_accuracy": None, "tokens_after_end_per_task": 141.5,
               "invented_turn_rate": 0.75, "loop_rate": 0.0, "degenerate_rate": 0.0,
               "pass_rate": 0.0}  # fmt: skip
    cut = {**runaway, "termination_rate": 0.5, "clean_stop_rate": 0.5,
           "tokens_after_end_per_task": 0.0, "invented_turn_rate": 0.0}  # fmt: skip
    rows = {
        "seed recipe, eos <|endoftext|>, stop off": runaway,
        "seed recipe, eos <|endoftext|>, stop on": cut,
    }
    table = recipes_table(rows, runs=4)
    header = table.splitlines()[0]
    assert "tokens after the end of the turn" in header and "invented turns" in header
    label = r"seed recipe, eos <\|endoftext\|>"  # escaped: a bare | would split the cell
    assert f"| {label}, stop off | 0% | 0% | n/a | n/a | 141.5 | 75% |" in table
    assert f"| {label}, stop on | 50% | 50% | n/a | n/a | 0.0 | 0% |" in table
    write_chart(rows, tmp_path / "recipes.png")
    assert (tmp_path / "recipes.png").stat().st_size > 1000
