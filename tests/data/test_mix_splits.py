"""The mixer on real generated tasks and shipped public rows, checked with the embedded model's
chat template and loaded with mlx-lm's own dataset loader."""

from __future__ import annotations

import json
import shutil
import types
from collections import Counter
from pathlib import Path

import anyio as anyio_package
import pytest
import structlog as structlog_package

from punie.data import convert_file, shipped_public_rows
from punie.data.generate.tasks import generate_to_files
from punie.data.mix import DatasetCard, MixConfig, mix_datasets
from punie.mlx.embedded import embedded_model_dir
from punie.records.conversation import Conversation, read_conversations, write_conversations


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("mix_inputs")
    for name, package in (("anyio", anyio_package), ("structlog", structlog_package)):
        generate_to_files(
            Path(package.__file__).parent,
            work / f"{name}.jsonl",
            limit=90,
            seed=1,
            snapshot_dir=work / "snap",
        )
    rows = shipped_public_rows()
    convert_file("glaive", rows["glaive"], work / "glaive.jsonl")
    convert_file("when2call", rows["when2call"], work / "when2call.jsonl")
    # One conversation with a placeholder tool result: it must be dropped, with that reason.
    bad = next(read_conversations(work / "anyio.jsonl"))
    data = bad.model_dump()
    tool = (
        next(m for m in data["messages"] if m["role"] == "tool")
        if any(m["role"] == "tool" for m in data["messages"])
        else None
    )
    assert tool is not None
    tool["content"] = "[Tool execution completed]"
    data["meta"]["row_id"] = "placeholder-row"
    write_conversations(work / "bad.jsonl", [Conversation.model_validate(data)])
    return {
        "anyio": work / "anyio.jsonl",
        "structlog": work / "structlog.jsonl",
        "glaive": work / "glaive.jsonl",
        "when2call": work / "when2call.jsonl",
        "bad": work / "bad.jsonl",
    }


@pytest.fixture(scope="module")
def mixed(inputs, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DatasetCard]:
    out = tmp_path_factory.mktemp("mixed")
    card = mix_datasets(
        [inputs["anyio"], inputs["structlog"], inputs["bad"]],
        [inputs["glaive"], inputs["when2call"]],
        out,
        MixConfig(ratio=0.7, seed=5, held_out_repos=("structlog",), max_seq_length=4096),
    )
    return out, card


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _key(row: dict) -> str:
    return json.dumps([m.get("content") for m in row["messages"] if m["role"] == "user"])


def test_ratio_within_tolerance_and_the_card_says_so(mixed) -> None:
    out, card = mixed
    train = card.domains["train"]
    share = train["code"] / (train["code"] + train["generic"])
    assert abs(share - 0.7) < 0.03
    assert card.ratio_achieved["train"] == pytest.approx(share, abs=1e-4)
    saved = json.loads((out / "card.json").read_text())
    assert saved["counts"]["train"]["generated"] == train["code"]
    assert saved["tokens"]["train"]["max"] <= 4096
    assert len(_rows(out / "train.jsonl")) == card.examples["train"]


def test_no_repository_or_source_row_leaks_across_splits(mixed) -> None:
    out, card = mixed
    assert card.repositories["test"] == ["structlog"]
    assert "structlog" not in card.repositories["train"] + card.repositories["valid"]
    keys = {split: {_key(r) for r in _rows(out / f"{split}.jsonl")} for split in card.examples}
    assert not keys["train"] & keys["test"]
    assert not keys["train"] & keys["valid"]
    assert not keys["valid"] & keys["test"]


def test_a_bad_conversation_is_dropped_with_its_reason(mixed) -> None:
    out, card = mixed
    assert card.dropped["placeholder_result"] == 1
    assert set(card.dropped) <= {"placeholder_result", "duplicate_of_earlier_split"}
    for split in ("train", "valid", "test"):
        assert "[Tool execution completed]" not in (out / f"{split}.jsonl").read_text()


def test_a_template_that_does_not_end_assistant_turns_drops_them(inputs, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(embedded_model_dir(), model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["chat_template"] = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
        "{% if m.role != 'assistant' %}<|im_end|>{% endif %}\n{% endfor %}"
    )
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    card = mix_datasets([inputs["anyio"]], [], tmp_path / "out", MixConfig(model_dir=model))
    total = len(list(read_conversations(inputs["anyio"])))
    assert card.dropped == {"no_end_of_turn_after_assistant": total}
    assert card.examples == {"train": 0, "valid": 0, "test": 0}


def test_too_long_conversations_are_dropped(inputs, tmp_path: Path) -> None:
    card = mix_datasets([inputs["anyio"]], [], tmp_path / "out", MixConfig(max_seq_length=900))
    assert card.dropped["too_long"] > 0
    assert card.examples["train"] > 0
    assert card.tokens["train"]["max"] <= 900


def test_per_turn_rows_equal_the_assistant_turns(inputs, tmp_path: Path) -> None:
    config = MixConfig(seed=5, held_out_repos=("structlog",), max_seq_length=4096)
    code = [inputs["anyio"], inputs["structlog"]]
    generic = [inputs["glaive"]]
    whole = mix_datasets(code, generic, tmp_path / "whole", config)
    per_turn = mix_datasets(
        code, generic, tmp_path / "turns", MixConfig(**{**config.__dict__, "per_turn": True})
    )
    for split in ("train", "valid", "test"):
        rows = _rows(tmp_path / "whole" / f"{split}.jsonl")
        turns = sum(sum(m["role"] == "assistant" for m in r["messages"]) for r in rows)
        assert per_turn.examples[split] == turns
        assert whole.examples[split] == len(rows)
        for row in _rows(tmp_path / "turns" / f"{split}.jsonl"):
            assert row["messages"][-1]["role"] == "assistant"


@pytest.mark.parametrize("mask_prompt", [False, True])
def test_mlx_lm_loads_the_output_with_the_embedded_tokenizer(mixed, mask_prompt) -> None:
    from mlx_lm.tuner.datasets import ChatDataset, load_local_dataset
    from mlx_lm.utils import load_tokenizer

    out, card = mixed
    tokenizer = load_tokenizer(embedded_model_dir())
    config = types.SimpleNamespace(mask_prompt=mask_prompt)
    train, valid, test = load_local_dataset(out, tokenizer, config)
    for dataset, split in ((train, "train"), (valid, "valid"), (test, "test")):
        assert isinstance(dataset, ChatDataset)
        assert len(dataset) == card.examples[split]
        rendered_calls = 0
        for index in range(min(len(dataset), 60)):
            tokens, offset = dataset.process(dataset[index])
            end = tokenizer.encode("<|im_end|>\n", add_special_tokens=False)
            assert tokens[-len(end) :] == end
            assert 0 <= offset < len(tokens)
            if mask_prompt:
                assert offset > 0
            rendered_calls += "<tool_call>\n{" in tokenizer.decode(tokens)
        assert rendered_calls > 0


@pytest.fixture(scope="module")
def no_test_mix(inputs, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DatasetCard]:
    """The demo's kind of mix: a validation repository, no test split."""
    out = tmp_path_factory.mktemp("no_test")
    (out / "test.jsonl").write_text('{"messages": []}\n')  # stale, from an earlier mix
    card = mix_datasets(
        [inputs["anyio"], inputs["structlog"]],
        [inputs["glaive"]],
        out,
        MixConfig(seed=5, valid_repos=("structlog",), test_fraction=0.0, max_seq_length=1024),
    )
    return out, card


def test_an_empty_split_gets_no_file(no_test_mix) -> None:
    out, card = no_test_mix
    assert card.examples["test"] == 0
    assert not (out / "test.jsonl").exists()
    assert card.examples["train"] > 0 and card.examples["valid"] > 0
    assert len(_rows(out / "valid.jsonl")) == card.examples["valid"]


@pytest.mark.slow
def test_stock_mlx_lm_lora_trains_on_the_mix_folder(no_test_mix, tmp_path: Path) -> None:
    """`python -m mlx_lm lora --data <mix folder>`, unchanged, trains one step on it."""
    import subprocess
    import sys

    out, _ = no_test_mix
    adapter = tmp_path / "adapter"
    command = [
        sys.executable, "-m", "mlx_lm", "lora",
        "--model", str(embedded_model_dir()), "--train", "--data", str(out),
        "--iters", "1", "--batch-size", "1", "--num-layers", "1", "--val-batches", "1",
        "--max-seq-length", "1024", "--adapter-path", str(adapter),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (adapter / "adapters.safetensors").is_file()
    assert "Training" in done.stdout


def test_harvested_runs_join_train_and_are_kept_when_code_is_downsampled(
    inputs, tmp_path: Path
) -> None:
    harvested = []
    for number, conversation in enumerate(read_conversations(inputs["anyio"])):
        if number == 5:
            break
        data = conversation.model_dump()
        data["messages"][1]["content"] += f" (round 1, run {number})"
        data["meta"].update(source="harvested", license="own runs", row_id=f"run-{number}",
                            repository="rich")  # fmt: skip
        harvested.append(Conversation.model_validate(data))
    own = tmp_path / "verified.jsonl"
    write_conversations(own, harvested)
    # Few generic rows: code is over-represented and downsampled to keep 70/30.
    card = mix_datasets(
        [inputs["anyio"], own],
        [inputs["when2call"]],
        tmp_path / "out",
        MixConfig(ratio=0.7, seed=5, max_seq_length=4096, valid_fraction=0.5, test_fraction=0.0),
    )
    assert card.counts["train"]["harvested"] == 5
    assert abs(card.ratio_achieved["train"] - 0.7) < 0.05
    assert card.counts["train"]["generated"] < sum(1 for _ in read_conversations(inputs["anyio"]))
    questions = {r["messages"][1]["content"] for r in _rows(tmp_path / "out" / "train.jsonl")}
    assert {c.messages[1].content for c in harvested} <= questions
    valid = tmp_path / "out" / "valid.jsonl"
    if valid.exists():  # split by repository, like generated tasks: none in valid
        assert not any("(round 1, run" in r["messages"][1]["content"] for r in _rows(valid))


def test_balance_over_keeps_every_code_row_and_repeats_generic_ones(inputs, tmp_path: Path) -> None:
    # Few generic rows (When2Call alone): `down` drops code rows, `over` repeats generic ones.
    def mix(balance: str) -> tuple[Path, DatasetCard]:
        out = tmp_path / balance
        config = MixConfig(ratio=0.7, seed=5, max_seq_length=4096, valid_fraction=0.0,
                           test_fraction=0.0, balance=balance)  # fmt: skip
        return out, mix_datasets([inputs["anyio"]], [inputs["when2call"]], out, config)

    code_rows = sum(1 for _ in read_conversations(inputs["anyio"]))
    _, down = mix("down")
    out, over = mix("over")
    assert down.domains["train"]["code"] < code_rows
    assert down.repeated["train"] == 0
    assert over.domains["train"]["code"] == code_rows
    assert abs(over.ratio_achieved["train"] - 0.7) < 0.01
    generic = over.domains["train"]["generic"]
    distinct = down.domains["train"]["generic"]
    assert generic > distinct and over.repeated["train"] == generic - distinct
    rows = _rows(out / "train.jsonl")
    assert len(rows) == code_rows + generic
    # Every generic row is repeated equally often, give or take one.
    times = Counter(json.dumps(row, sort_keys=True) for row in rows)
    whole = generic // distinct
    repeated = [n for n in times.values() if n > 1]
    assert len(repeated) == distinct and set(repeated) <= {whole, whole + 1}


def test_an_unknown_balance_names_the_flag(inputs, tmp_path: Path) -> None:
    from punie.errors import DataError

    with pytest.raises(DataError, match="--balance must be one of down, over, got 'sideways'"):
        mix_datasets([inputs["anyio"]], [inputs["when2call"]], tmp_path,
                     MixConfig(balance="sideways"))  # fmt: skip
