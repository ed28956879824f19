"""The forgetting check: held-out loss through mlx-lm and direct answers through the agent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scripted_server import ScriptedServer, text_reply, tool_reply

from punie.evaluation import EvalTarget
from punie.evaluation.forgetting import (
    direct_questions,
    forgetting_check,
    forgetting_table,
    token_f1,
)
from punie.mlx.embedded import embedded_model_dir
from punie.mlx.train.loss import held_out_loss
from punie.records.conversation import Conversation, Message, Meta, write_conversations

META = Meta(source="test", license="CC0")
QA = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many legs does a spider have?", "A spider has eight legs."),
]


def _conversations(path: Path) -> Path:
    rows = [
        Conversation(
            messages=[Message(role="user", content=q), Message(role="assistant", content=a)],
            meta=META,
        )
        for q, a in QA
    ]
    write_conversations(path, rows)
    return path


def test_token_f1() -> None:
    assert token_f1("Paris", "Paris") == 1.0
    assert token_f1("it is Paris", "Paris") == pytest.approx(0.5)
    assert token_f1("", "Paris") == 0.0


def test_direct_questions_skip_tool_call_replies(tmp_path: Path) -> None:
    tool_row = Conversation(
        messages=[
            Message(role="user", content="Weather?"),
            Message(
                role="assistant",
                tool_calls=[{"id": "c1", "name": "weather", "arguments": {}}],
            ),
            Message(role="tool", content="sunny", tool_call_id="c1"),
            Message(role="assistant", content="Sunny."),
        ],
        meta=META,
    )
    rows = [
        tool_row,
        *(
            Conversation.model_validate_json(line)
            for line in _conversations(tmp_path / "c.jsonl").read_text().splitlines()
        ),
    ]
    assert direct_questions(rows) == QA


@pytest.mark.slow
def test_forgetting_check_on_the_embedded_model(tmp_path: Path) -> None:
    data = _conversations(tmp_path / "held_out.jsonl")
    model = embedded_model_dir()
    loss = held_out_loss(model, data)
    assert loss.conversations == 2 and loss.skipped == 0
    assert loss.tokens > 10
    assert math.isfinite(loss.loss) and 0 < loss.loss < 20

    def reply(body: dict) -> dict:
        question = body["messages"][-1]["content"]
        if "France" in question:
            return text_reply("Paris")
        return (
            tool_reply("grep", {"pattern": "spider"})
            if len(body["messages"]) < 3
            else (text_reply("Eight."))
        )

    with ScriptedServer([reply]) as server:
        target = EvalTarget("base", model=str(model), base_url=server.base_url)
        report = forgetting_check(data, [target], out_dir=tmp_path / "out")
    (result,) = report.results
    assert result.loss == pytest.approx(loss.loss, rel=1e-4)
    assert result.questions == 2
    assert result.direct_answer_rate == 0.5  # the spider question was answered with a tool call
    assert result.answer_f1 == pytest.approx(token_f1("Paris", QA[0][1]) / 2)
    saved = json.loads((tmp_path / "out" / "forgetting.json").read_text())
    assert saved["results"][0]["label"] == "base"
    assert "| direct answers | 50% |" in forgetting_table(report)
