"""Salesforce/xlam-function-calling-60k rows to Conversations: a query answered by parallel calls.

xLAM is CC-BY-NC-4.0 (non-commercial): its conversations carry that license in `meta`, and the
demo keeps them out of anything it trains by default.
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
from punie.records.toolcall_text import parse_tool_calls

SOURCE = "Salesforce/xlam-function-calling-60k"
LICENSE = "CC-BY-NC-4.0"


def convert_xlam(record: Any, row_id: str) -> Conversation:
    """One xLAM row (`query`, `answers`, `tools`; the last two JSON strings) as a Conversation."""
    if not isinstance(record, dict) or not {"query", "answers", "tools"} <= set(record):
        keys = sorted(record)[:6] if isinstance(record, dict) else type(record).__name__
        raise RowRejected(UNRECOGNISED, f"{keys}; expected query/answers/tools")
    row_id = str(record.get("id", row_id))
    tools = unique_tools(_json_list(record["tools"], "bad_tool_schema"))
    answers = record["answers"]
    text = answers if isinstance(answers, str) else json.dumps(answers)
    # A JSON list of {"name", "arguments"}: the shared parser reads it as a fenced call list.
    parsed = parse_tool_calls(f"```json\n{text}\n```")
    if parsed.errors or not parsed.calls:
        raise RowRejected(parsed.errors[0] if parsed.errors else "no_tool_call", text[:200])
    declared = {t["function"]["name"] for t in tools}
    for call in parsed.calls:
        if call.name not in declared:
            raise RowRejected("undeclared_function", call.name)
    builder = ConversationBuilder()
    builder.user(str(record["query"]))
    builder.assistant("", parsed.calls)
    meta = Meta(source=SOURCE, license=LICENSE, row_id=row_id, kind="tool_call")
    return builder.build(tools, meta)


def _json_list(raw: Any, reason: str) -> list[Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RowRejected(reason, exc.msg) from exc
    if not isinstance(raw, list):
        raise RowRejected(reason, f"a {type(raw).__name__}, not a list")
    return raw
