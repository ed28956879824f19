"""NousResearch/hermes-function-calling-v1 rows to Conversations.

sharegpt rows whose system prompt lists the tools inside `<tools>...</tools>` (JSON or a Python
repr), whose calls are `<tool_call>` blocks and whose results are `<tool_response>` blocks. The
json-mode rows (a `<schema>` and a JSON answer, no tools) convert as structured-output answers.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from punie.data.convert.report import UNRECOGNISED
from punie.records.conversation import (
    Conversation,
    ConversationBuilder,
    Meta,
    RowRejected,
    unique_tools,
)

SOURCE = "NousResearch/hermes-function-calling-v1"
LICENSE = "Apache-2.0"

_TOOLS = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_RESPONSE = re.compile(r"^\s*<tool_response>(.*?)(?:</tool_response>\s*)?$", re.DOTALL)
_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}


def convert_hermes(record: Any, row_id: str) -> Conversation:
    """One Hermes row (`conversations` of `from`/`value`) as a Conversation, or RowRejected."""
    if not isinstance(record, dict) or not isinstance(record.get("conversations"), list):
        keys = sorted(record)[:6] if isinstance(record, dict) else type(record).__name__
        raise RowRejected(UNRECOGNISED, f"{keys}; expected conversations")
    row_id = str(record.get("id", row_id))
    tools: list[dict[str, Any]] = []
    json_mode = False
    builder = ConversationBuilder()
    for turn in record["conversations"]:
        if not isinstance(turn, dict) or "from" not in turn:
            raise RowRejected(UNRECOGNISED, "a turn without `from`")
        role = _ROLES.get(str(turn["from"]))
        value = str(turn.get("value") or "")
        if role is None:
            raise RowRejected("unknown_role", str(turn["from"]))
        if role == "system":
            tools, prose = _system_tools(value)
            json_mode = "<schema>" in value
            builder.system(prose)
        elif role == "user":
            builder.user(value)
        elif role == "assistant":
            builder.assistant_text(value)
        else:
            builder.tool(_tool_result(value))
    declared = {t["function"]["name"] for t in tools}
    for call in builder.calls:
        if call.name not in declared:
            raise RowRejected("undeclared_function", call.name)
    kind = "structured_output" if json_mode and not builder.calls else None
    meta = Meta(source=SOURCE, license=LICENSE, row_id=row_id, kind=kind)
    if kind is None and tools and not builder.calls:
        meta.kind = "no_call"
    return builder.build(tools, meta)


def _system_tools(system: str) -> tuple[list[dict[str, Any]], str]:
    """The function schemas between `<tools>` tags (JSON, or the card's Python repr), and the
    system prompt without them: the chat template renders `tools` itself."""
    match = next(
        (m for m in _TOOLS.finditer(system) if m.group(1).strip().startswith(("[", "{"))), None
    )
    if match is None:
        return [], system
    prose = (system[: match.start()] + system[match.end() :]).strip()
    body = match.group(1).strip()
    try:
        specs = json.loads(body)
    except json.JSONDecodeError:
        try:
            specs = ast.literal_eval(body)  # a Python literal, read, never run
        except (ValueError, SyntaxError) as exc:
            raise RowRejected("bad_tool_schema", str(exc)[:200]) from exc
    if isinstance(specs, dict):
        specs = [specs]
    if not isinstance(specs, list):
        raise RowRejected("bad_tool_schema", f"a {type(specs).__name__}, not a list")
    return unique_tools(specs), prose


def _tool_result(value: str) -> str:
    """The result text: the `content` of a `<tool_response>` JSON body, else the raw body."""
    match = _RESPONSE.match(value)
    body = match.group(1).strip() if match else value.strip()
    try:
        decoded = json.loads(body)
    except json.JSONDecodeError:
        return body
    if isinstance(decoded, dict) and "content" in decoded:
        content = decoded["content"]
        return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return body
