"""Training fixtures: small real conversations (tool calls and plain chat) in mlx-lm chat format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

READ_FILE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a text file in the repository.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "Relative path."}},
            "required": ["path"],
        },
    },
}


def tool_conversation(name: str, body: str, answer: str) -> dict[str, Any]:
    """user, assistant tool call, tool result, assistant answer."""
    return {
        "messages": [
            {"role": "user", "content": f"What does {name} define?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": {"path": name}},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "name": "read_file", "content": body},
            {"role": "assistant", "content": answer},
        ],
        "tools": [READ_FILE_TOOL],
    }


def plain_chat(question: str, answer: str) -> dict[str, Any]:
    """system, user, assistant."""
    return {
        "messages": [
            {"role": "system", "content": "You are a terse coding assistant."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def rows(n: int) -> list[dict[str, Any]]:
    """n varied rows, alternating tool conversations and plain chats."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(
                tool_conversation(
                    f"pkg/mod{i}.py",
                    f"def f{i}(x):\n    return x * {i}\n",
                    f"It defines f{i}, which multiplies its argument by {i}.",
                )
            )
        else:
            out.append(plain_chat(f"What is {i} plus {i}?", f"{i} plus {i} is {2 * i}."))
    return out


def write_split(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """train.jsonl (6 rows) and valid.jsonl (2 rows) in mlx-lm chat format."""
    folder = tmp_path / "data"
    folder.mkdir()
    write_split(folder / "train.jsonl", rows(6))
    write_split(folder / "valid.jsonl", rows(8)[6:])
    return folder


@pytest.fixture(scope="session")
def model_dir() -> Path:
    from punie.mlx.embedded import embedded_model_dir

    return embedded_model_dir()


@pytest.fixture(scope="session")
def hf_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)
