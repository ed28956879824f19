"""The one-pass assistant mask, token by token, on the real embedded tokenizer and template."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import plain_chat, tool_conversation

from punie.errors import DataError
from punie.mlx.train.batches import pack_batch
from punie.mlx.train.masking import (
    assistant_mask,
    end_of_turn_ids,
    per_turn_examples,
    render_tokens,
    seed_example,
)


def chatml_oracle(tokenizer: Any, tokens: list[int]) -> list[bool]:
    """An independent reading of ChatML: inside an `<|im_start|>assistant\\n ... <|im_end|>`
    block, every token after the header through `<|im_end|>` is a target; nothing else is."""
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    mask = [False] * len(tokens)
    i = 0
    while i < len(tokens):
        if tokens[i] != start:
            i += 1
            continue
        j = i + 1
        while tokenizer.decode(tokens[i + 1 : j]) in ("", "ass", "assistant", "user", "system"):
            j += 1  # role tokens, then the newline that ends the header
        header = tokenizer.decode(tokens[i + 1 : j])
        k = j
        while tokens[k] != end:
            k += 1
        if header == "assistant\n":
            for t in range(j, k + 1):
                mask[t] = True
        i = k + 1
    return mask


def decoded_targets(tokenizer: Any, tokens: tuple[int, ...], mask: tuple[bool, ...]) -> list[str]:
    """The decoded text of each contiguous run of targets."""
    runs, current = [], []
    for token, on in zip(tokens, mask, strict=True):
        if on:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


@pytest.fixture
def eot(hf_tokenizer: Any) -> frozenset[int]:
    return end_of_turn_ids(hf_tokenizer, ["<|im_end|>"])


def test_two_turn_tool_conversation_masks_both_assistant_turns(hf_tokenizer, eot):
    row = tool_conversation("pkg/a.py", "def f(x):\n    return 2 * x\n", "It doubles x.")
    example = assistant_mask(hf_tokenizer, row["messages"], row["tools"], eot)

    full = render_tokens(hf_tokenizer, row["messages"], row["tools"])
    assert list(example.tokens) == full  # the same tokens mlx-lm's ChatDataset trains on
    assert list(example.mask) == chatml_oracle(hf_tokenizer, full)
    assert decoded_targets(hf_tokenizer, example.tokens, example.mask) == [
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "pkg/a.py"}}\n'
        "</tool_call><|im_end|>",
        "It doubles x.<|im_end|>",
    ]
    im_end = hf_tokenizer.convert_tokens_to_ids("<|im_end|>")
    ends = [t for t, on in zip(example.tokens, example.mask, strict=True) if on and t == im_end]
    assert len(ends) == 2  # each assistant turn ends with its end-of-turn token, trained
    # Nothing of the system prompt, the tool schema, the user turn or the tool result is trained.
    untrained = hf_tokenizer.decode(
        [t for t, on in zip(example.tokens, example.mask, strict=True) if not on]
    )
    for text in ("read_file", "What does pkg/a.py define?", "<tool_response>", "return 2 * x"):
        assert text in untrained


def test_plain_chat_masks_only_the_answer(hf_tokenizer, eot):
    row = plain_chat("Name a sorting algorithm.", "Merge sort.")
    example = assistant_mask(hf_tokenizer, row["messages"], None, eot)
    assert list(example.mask) == chatml_oracle(hf_tokenizer, list(example.tokens))
    assert decoded_targets(hf_tokenizer, example.tokens, example.mask) == ["Merge sort.<|im_end|>"]
    # The template's trailing newline after the end-of-turn token is not a target.
    assert example.tokens[-1] != hf_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert example.mask[-1] is False


def test_multi_turn_with_parallel_tool_results(hf_tokenizer, eot):
    call = {"type": "function", "function": {"name": "read_file", "arguments": {"path": "a"}}}
    messages = [
        {"role": "user", "content": "Compare a and b."},
        {"role": "assistant", "content": "Reading both.", "tool_calls": [
            {**call, "id": "1"},
            {"id": "2", "type": "function",
             "function": {"name": "read_file", "arguments": {"path": "b"}}},
        ]},
        {"role": "tool", "tool_call_id": "1", "content": "A"},
        {"role": "tool", "tool_call_id": "2", "content": "B"},
        {"role": "assistant", "content": "They differ."},
        {"role": "user", "content": "Thanks."},
        {"role": "assistant", "content": "You're welcome."},
    ]  # fmt: skip
    example = assistant_mask(hf_tokenizer, messages, [], eot)
    assert list(example.mask) == chatml_oracle(hf_tokenizer, list(example.tokens))
    assert len(decoded_targets(hf_tokenizer, example.tokens, example.mask)) == 3


def test_answer_weight_weighs_only_answers_from_tool_results(hf_tokenizer, eot):
    """The answer after the tool results weighs 3; the tool call, the answer to the later user
    turn (no tool result before it) and every untrained token keep their weights."""
    call = {"type": "function", "function": {"name": "grep", "arguments": {"pattern": "x"}}}
    messages = [
        {"role": "user", "content": "Where is x?"},
        {"role": "assistant", "content": "", "tool_calls": [{**call, "id": "1"}]},
        {"role": "tool", "tool_call_id": "1", "content": "a.py:3: x = 1"},
        {"role": "assistant", "content": "`x` is set in `a.py` at line 3."},
        {"role": "user", "content": "Thanks."},
        {"role": "assistant", "content": "You're welcome."},
    ]
    plain = assistant_mask(hf_tokenizer, messages, [], eot)
    weighted = assistant_mask(hf_tokenizer, messages, [], eot, answer_weight=3.0)
    assert plain.weights is None
    assert weighted.tokens == plain.tokens and weighted.mask == plain.mask
    weights = weighted.loss_weights()
    runs: dict[float, list[int]] = {}
    for token, w in zip(weighted.tokens, weights, strict=True):
        runs.setdefault(w, []).append(token)
    assert hf_tokenizer.decode(runs[3.0]) == "`x` is set in `a.py` at line 3.<|im_end|>"
    assert "<tool_call>" in hf_tokenizer.decode(runs[1.0])
    assert "You're welcome." in hf_tokenizer.decode(runs[1.0])
    assert "a.py:3: x = 1" in hf_tokenizer.decode(runs[0.0])  # the tool result is not trained
    # pack_batch hands the weights to the loss (0 on padding and untrained tokens).
    _, packed, _ = pack_batch([weighted, plain], 4096)
    assert sorted(set(packed[0].tolist())) == [0.0, 1.0, 3.0]
    assert sorted(set(packed[1].tolist())) == [0.0, 1.0]
    assert packed[0].sum() == pytest.approx(sum(weights))


def test_a_turn_left_out_of_training_is_context_only(hf_tokenizer, eot):
    """A failed call marked `"training": false` renders as before but carries no loss; the
    recovery call and the answer after it do, and the answer weight still finds the answer."""
    bad = {"type": "function", "function": {"name": "find_x", "arguments": {"name": "x"}}}
    good = {"type": "function", "function": {"name": "grep", "arguments": {"pattern": "x ="}}}
    messages = [
        {"role": "user", "content": "Where is x?"},
        {"role": "assistant", "content": "", "tool_calls": [{**bad, "id": "1"}]},
        {"role": "tool", "tool_call_id": "1", "content": '{"error":"Unknown tool name"}'},
        {"role": "assistant", "content": "", "tool_calls": [{**good, "id": "2"}]},
        {"role": "tool", "tool_call_id": "2", "content": "a.py:3: x = 1"},
        {"role": "assistant", "content": "`x` is set in `a.py` at line 3."},
    ]
    trained = assistant_mask(hf_tokenizer, messages, [], eot)
    masked = [dict(m) for m in messages]
    masked[1]["training"] = False
    example = assistant_mask(hf_tokenizer, masked, [], eot, answer_weight=2.0)
    assert example.tokens == trained.tokens
    targets = decoded_targets(hf_tokenizer, example.tokens, example.mask)
    assert len(decoded_targets(hf_tokenizer, trained.tokens, trained.mask)) == 3
    assert len(targets) == 2
    assert not any("find_x" in t for t in targets)
    assert "grep" in targets[0] and targets[1].startswith("`x` is set")
    weights = example.loss_weights()
    assert max(weights) == 2.0
    answer = [t for t, w in zip(example.tokens, weights, strict=True) if w == 2.0]
    assert hf_tokenizer.decode(answer) == "`x` is set in `a.py` at line 3.<|im_end|>"
    only_context = [{**m, "training": False} if m["role"] == "assistant" else m for m in messages]
    with pytest.raises(DataError, match="no assistant message to train on"):
        assistant_mask(hf_tokenizer, only_context, [], eot)


def test_per_turn_expansion_repeats_the_prefix(hf_tokenizer, eot):
    row = tool_conversation("pkg/a.py", "x = 1\n", "It sets x.")
    one = assistant_mask(hf_tokenizer, row["messages"], row["tools"], eot)
    turns = per_turn_examples(hf_tokenizer, row["messages"], row["tools"], eot)
    assert len(turns) == 2
    assert sum(t.trained_tokens for t in turns) == one.trained_tokens
    assert sum(len(t) for t in turns) > 1.5 * len(one)
    # Each expanded example is a prefix of the whole conversation, trained on its last turn only.
    for turn in turns:
        assert turn.tokens == one.tokens[: len(turn)]
        assert len(decoded_targets(hf_tokenizer, turn.tokens, turn.mask)) == 1


def test_seed_example_trains_every_token(hf_tokenizer):
    row = tool_conversation("pkg/a.py", "x = 1\n", "It sets x.")
    example = seed_example(hf_tokenizer, row["messages"], row["tools"])
    assert example.mask[0] is False and all(example.mask[1:])
    assert example.tokens[-1] == hf_tokenizer.eos_token_id
    assert "What does pkg/a.py define?" in hf_tokenizer.decode(list(example.tokens))


def test_row_without_assistant_turn_is_refused(hf_tokenizer, eot):
    with pytest.raises(DataError, match="row 7: no assistant message"):
        assistant_mask(hf_tokenizer, [{"role": "user", "content": "hi"}], None, eot, where="row 7")


def test_turn_without_end_of_turn_token_is_refused(hf_tokenizer):
    row = plain_chat("hi", "hello")
    # With an end-of-turn set that the template never renders, no turn can end.
    with pytest.raises(DataError, match="without an end-of-turn token"):
        assistant_mask(
            hf_tokenizer, row["messages"], None, frozenset({hf_tokenizer.bos_token_id or 1})
        )
