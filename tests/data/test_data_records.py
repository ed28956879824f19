"""The Conversation record: validation, the mlx-lm chat row, atomic JSONL files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from punie.errors import DataError
from punie.records.conversation import (
    Conversation,
    Message,
    Meta,
    ToolCall,
    read_conversations,
    write_conversations,
)

TOOL = {
    "type": "function",
    "function": {
        "name": "grep",
        "description": "search",
        "parameters": {"type": "object", "properties": {}},
    },
}


def _conversation(n: int = 0) -> Conversation:
    return Conversation(
        messages=[
            Message(role="user", content=f"find foo {n}"),
            Message(
                role="assistant",
                tool_calls=[ToolCall(id="call_0", name="grep", arguments={"pattern": "foo"})],
            ),
            Message(role="tool", content="a.py:1: foo", tool_call_id="call_0", name="grep"),
            Message(role="assistant", content="foo is in a.py"),
        ],
        tools=[TOOL],
        meta=Meta(source="test", license="Apache-2.0", row_id=str(n), kind="tool_call"),
    )


def test_to_openai_is_the_mlx_lm_chat_row() -> None:
    row = _conversation().to_openai()
    assert row["tools"] == [TOOL]
    assert row["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "grep", "arguments": {"pattern": "foo"}},
            }
        ],
    }
    assert row["messages"][2] == {
        "role": "tool",
        "content": "a.py:1: foo",
        "tool_call_id": "call_0",
        "name": "grep",
    }
    json.dumps(row)  # JSON-serialisable as is


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([{"role": "user", "content": "hi"}], "at least one assistant"),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "tool", "content": "x", "tool_call_id": "nope"},
                {"role": "assistant", "content": "ok"},
            ],
            "answers no preceding call",
        ),
        ([{"role": "assistant", "content": " "}], "needs content or tool_calls"),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "system", "content": "late"},
            ],
            "only come first",
        ),
        (
            [{"role": "assistant", "tool_calls": [{"name": "f", "arguments": "[1]"}]}],
            "valid dictionary",
        ),
    ],
)
def test_validators_refuse_broken_conversations(messages, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Conversation.model_validate({"messages": messages, "meta": {"source": "t", "license": "x"}})


def test_meta_keeps_generator_fields() -> None:
    meta = Meta(source="generated", license="MIT", repository="anyio", expected_tool="grep")
    assert meta.model_dump()["expected_tool"] == "grep"


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out" / "rows.jsonl"
    assert write_conversations(path, (_conversation(i) for i in range(3))) == 3
    assert [c.meta.row_id for c in read_conversations(path)] == ["0", "1", "2"]
    assert next(iter(read_conversations(path))) == _conversation(0)


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(_conversation().model_dump_json() + "\n" + '{"messages": []}\n')
    with pytest.raises(DataError, match=r"rows\.jsonl:2: not a Conversation"):
        list(read_conversations(path))


def test_interrupted_write_leaves_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    write_conversations(path, [_conversation(9)])
    before = path.read_bytes()

    def rows_then_crash():
        yield _conversation(0)
        yield _conversation(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_conversations(path, rows_then_crash())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]
