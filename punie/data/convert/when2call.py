"""nvidia/When2Call rows to Conversations: when to call a tool, ask back, or say it cannot.

Three shapes: the test/MCQ rows (`question`, `answers` per behaviour, `correct_answer`), the SFT
rows (`tools` + `messages`, calls written as `<TOOLCALL>[...]</TOOLCALL>`) and the preference
rows (their `chosen_response` is the assistant turn kept).
"""

from __future__ import annotations

import json
from typing import Any

from punie.data.convert.report import UNRECOGNISED
from punie.records.conversation import (
    Conversation,
    ConversationBuilder,
    Meta,
    RowRejected,
    unique_tools,
)

SOURCE = "nvidia/When2Call"
LICENSE = "CC-BY-4.0"

# correct_answer -> (key in `answers`, meta.kind)
_BEHAVIOURS = {
    "tool_call": ("tool_call", "tool_call"),
    "request_for_info": ("request_for_info", "ask_back"),
    "cannot_answer": ("cannot_answer", "cannot_answer"),
    "direct": ("direct", "direct_answer"),
}


def convert_when2call(record: Any, row_id: str) -> Conversation:
    """One When2Call row (test/MCQ, SFT or preference) as a Conversation, or RowRejected."""
    if not isinstance(record, dict):
        raise RowRejected(UNRECOGNISED, f"a {type(record).__name__}, not an object")
    row_id = str(record.get("uuid") or record.get("id") or row_id)
    if "question" in record and "answers" in record:
        return _from_test_row(record, row_id)
    if "messages" in record:
        return _from_messages(record, row_id)
    raise RowRejected(UNRECOGNISED, f"keys {sorted(record)[:6]}; expected question/answers")


def _tools(raw: Any) -> list[dict[str, Any]]:
    specs = []
    for spec in raw or []:
        if isinstance(spec, str):
            try:
                spec = json.loads(spec)
            except json.JSONDecodeError as exc:
                raise RowRejected("bad_tool_schema", exc.msg) from exc
        specs.append(spec)
    return unique_tools(specs)


def _from_test_row(record: dict[str, Any], row_id: str) -> Conversation:
    behaviour = _BEHAVIOURS.get(str(record.get("correct_answer")))
    if behaviour is None:
        raise RowRejected("unknown_behaviour", str(record.get("correct_answer")))
    key, kind = behaviour
    answer = (record.get("answers") or {}).get(key)
    if not isinstance(answer, str) or not answer.strip():
        raise RowRejected("missing_answer", key)
    tools = _tools(record.get("tools"))
    builder = ConversationBuilder()
    builder.user(str(record["question"]))
    if key == "tool_call":
        # The answer is one bare {"name", "arguments"} object: the shared parser reads it.
        builder.assistant_text(answer)
        if not builder.calls:
            raise RowRejected("bad_tool_call", answer[:200])
    else:
        builder.assistant(answer)
    return _finish(builder, tools, kind, row_id)


def _from_messages(record: dict[str, Any], row_id: str) -> Conversation:
    tools = _tools(record.get("tools"))
    messages = list(record["messages"])
    if isinstance(record.get("chosen_response"), dict):
        messages.append(record["chosen_response"])
    builder = ConversationBuilder()
    for message in messages:
        builder.turn(str(message.get("role")), str(message.get("content") or ""))
    last = builder.messages[-1] if builder.messages else None
    if builder.calls and last is not None and last.tool_calls:
        kind = "tool_call"
    elif last is not None and last.content.rstrip().endswith("?"):
        kind = "ask_back"
    else:
        kind = "no_call"
    return _finish(builder, tools, kind, row_id)


def _finish(
    builder: ConversationBuilder, tools: list[dict[str, Any]], kind: str, row_id: str
) -> Conversation:
    declared = {t["function"]["name"] for t in tools}
    for call in builder.calls:
        if call.name not in declared:
            raise RowRejected("undeclared_function", call.name)
    meta = Meta(source=SOURCE, license=LICENSE, row_id=row_id, kind=kind)
    return builder.build(tools, meta)
