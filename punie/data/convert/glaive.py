"""glaive-function-calling-v2 rows to Conversations, with every quirk of the real data handled.

Native rows hold `system` ("SYSTEM: ... -" then the function JSON) and `chat` (turns headed
`USER:`, `ASSISTANT:`, `FUNCTION RESPONSE:`). The re-shaped copies other projects made are read
too: sharegpt (`function_call` / `observation` roles), ChatML-style `from`/`value` lists, flat
prompts and OpenAI messages. Calls go through the shared text parser, `punie.records.toolcall_text`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import structlog

from punie.data.convert.report import UNRECOGNISED
from punie.records.conversation import (
    Conversation,
    ConversationBuilder,
    Meta,
    RowRejected,
    unique_tools,
)
from punie.records.toolcall_text import TextToolCall

log = structlog.get_logger(__name__)

SOURCE = "glaiveai/glaive-function-calling-v2"
LICENSE = "Apache-2.0"

# A turn starts at a role header after a blank line; a header after a single newline is text
# of the previous turn. Only "\n" counts: U+0085 and friends are ordinary characters here.
_TURN_SPLIT = re.compile(r"\n[ \t]*\n[ \t\n]*(?=(?:USER|ASSISTANT|FUNCTION RESPONSE):)")
# Flat prompts other projects built put each turn on its own line.
_FLAT_SPLIT = re.compile(r"\n+(?=(?:USER|ASSISTANT|FUNCTION RESPONSE):)")
_HEADER = re.compile(r"(USER|ASSISTANT|FUNCTION RESPONSE):[ \t]?")
_END_OF_TEXT = "<|endoftext|>"
_DECODER = json.JSONDecoder()


def convert_glaive(record: Any, row_id: str) -> Conversation:
    """One glaive row (native or a known re-shaped copy) as a Conversation, or RowRejected."""
    if isinstance(record, list):
        return _from_value_list(record, None, row_id)
    if not isinstance(record, dict):
        raise RowRejected(UNRECOGNISED, f"a {type(record).__name__}, not an object")
    row_id = str(record.get("row_index", row_id)) if record.get("row_index") is not None else row_id
    if "chat" in record or "system" in record:
        return _from_native(record.get("system"), record.get("chat"), row_id, _TURN_SPLIT)
    if "conversations" in record:
        return _from_value_list(record["conversations"], record.get("tools"), row_id)
    if "prompt" in record:
        system, chat = _split_flat_prompt(str(record["prompt"]))
        return _from_native(system, chat, row_id, _FLAT_SPLIT)
    if "messages" in record or "request" in record:
        return _from_openai(record, row_id)
    raise RowRejected(UNRECOGNISED, f"keys {sorted(record)[:6]}; expected system/chat")


def glaive_tools(system: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt's prose and its JSON function definitions (duplicates dropped)."""
    text = (system or "").strip()
    if text.startswith("SYSTEM:"):
        text = text[len("SYSTEM:") :].strip()
    start = text.find("{")
    if start < 0:
        return text, []
    prose = text[:start].strip().rstrip("-").strip()
    specs: list[Any] = []
    pos = start
    while pos < len(text):
        try:
            spec, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise RowRejected("bad_function_schema", f"{exc.msg} at {exc.pos}") from exc
        specs.append(spec)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return prose, unique_tools(specs)


def split_turns(chat: str, separator: re.Pattern[str] = _TURN_SPLIT) -> list[tuple[str, str]]:
    """`(role header, body)` pairs; raises RowRejected when the chat has no leading header."""
    chat = chat.strip()
    turns = []
    for part in separator.split(chat):
        header = _HEADER.match(part)
        if header is None:
            raise RowRejected("no_role_header", part[:80])
        turns.append((header.group(1), part[header.end() :]))
    return turns


def _from_native(
    system: str | None, chat: str | None, row_id: str, separator: re.Pattern[str]
) -> Conversation:
    if not chat or not chat.strip():
        raise RowRejected("no_chat")
    prose, tools = glaive_tools(system)
    builder = ConversationBuilder()
    builder.system(prose)
    turns = split_turns(chat, separator)
    for role, body in turns:
        if role == "USER":
            builder.user(body)
        elif role == "ASSISTANT":
            builder.assistant_text(body.replace(_END_OF_TEXT, ""))
        else:
            builder.tool(body)
    if len(turns) == 1 and turns[0][0] == "USER" and "ASSISTANT:" in turns[0][1]:
        # Every header follows a space, not a blank line: the copy lost its newlines.
        raise RowRejected("turns_not_separated")
    return _finish(builder, tools, row_id)


def _finish(builder: ConversationBuilder, tools: list[dict[str, Any]], row_id: str) -> Conversation:
    declared = {t["function"]["name"] for t in tools}
    for call in builder.calls:
        if not declared:
            raise RowRejected("call_without_schema", call.name)
        if call.name not in declared:
            raise RowRejected("undeclared_function", call.name)
    return builder.build(tools, Meta(source=SOURCE, license=LICENSE, row_id=row_id))


def _split_flat_prompt(prompt: str) -> tuple[str, str]:
    match = re.search(r"(?:^|\n)(?=USER:)", prompt)
    if match is None:
        raise RowRejected("no_role_header", prompt[:80])
    return prompt[: match.start()], prompt[match.end() :]


_VALUE_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "call",
    "function-call": "call",
    "observation": "tool",
    "function-response": "tool",
    "function_response": "tool",
    "tool": "tool",
    "system": "system",
}


def _from_value_list(turns: Any, tools_field: Any, row_id: str) -> Conversation:
    """sharegpt / ChatML-style `[{"from": ..., "value": ...}]` lists."""
    if not isinstance(turns, list) or not all(
        isinstance(t, dict) and "from" in t and "value" in t for t in turns
    ):
        raise RowRejected(UNRECOGNISED, "conversations is not a list of {from, value}")
    tools: list[dict[str, Any]] = []
    if tools_field:
        try:
            specs = json.loads(tools_field) if isinstance(tools_field, str) else tools_field
        except json.JSONDecodeError as exc:
            raise RowRejected("bad_function_schema", exc.msg) from exc
        tools = unique_tools(specs if isinstance(specs, list) else [specs])
    builder = ConversationBuilder()
    for turn in turns:
        role = _VALUE_ROLES.get(str(turn["from"]).lower())
        value = str(turn["value"] or "")
        if role is None:
            raise RowRejected("unknown_role", str(turn["from"]))
        if role == "system":
            prose, system_tools = glaive_tools(value)
            builder.system(prose)
            tools = tools or system_tools
        elif role == "user":
            builder.user(value)
        elif role == "assistant":
            builder.assistant_text(value.replace(_END_OF_TEXT, ""))
        elif role == "call":
            builder.assistant_text(f"<functioncall> {value}")
        else:
            builder.tool(value)
    return _finish(builder, tools, row_id)


def _from_openai(record: dict[str, Any], row_id: str) -> Conversation:
    """OpenAI `messages` (+ `tools`), or a request/response pair `{request, message}`."""
    request = record.get("request", record)
    messages = list(request.get("messages") or [])
    if isinstance(record.get("message"), dict):
        messages.append({"role": "assistant", **record["message"]})
    row_id = str(record.get("name", row_id))
    tools = unique_tools(request.get("tools") or [])
    builder = ConversationBuilder()
    for message in messages:
        role, content = str(message.get("role")), str(message.get("content") or "")
        tool_calls = message.get("tool_calls") if role == "assistant" else None
        calls = [_openai_call(c) for c in tool_calls or []]
        if calls:
            builder.assistant(content, calls)
        else:
            builder.turn(role, content)
    return _finish(builder, tools, row_id)


def _openai_call(call: dict[str, Any]) -> TextToolCall:
    function = call.get("function", call)
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise RowRejected("arguments_not_json", exc.msg) from exc
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict) or not function.get("name"):
        raise RowRejected("bad_tool_call", str(function)[:200])
    return TextToolCall(name=str(function["name"]), arguments=arguments)
