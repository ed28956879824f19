"""Client-side repair of model replies: cut at end-of-turn markers, recover tool calls from text.

Wraps any pydantic-ai model, so the OpenAI-compatible client and the scripted `FunctionModel`
of the tests go through the same repair.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import structlog
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from punie.records.toolcall_text import cut_at_markers, parse_tool_calls

log = structlog.get_logger(__name__)

REPAIR_KEY = "punie_repair"
"""The `provider_details` key under which a repaired response records what was done to it."""


class RecoveringModel(WrapperModel):
    """A model whose replies are cut at the first end-of-turn marker and whose text tool calls run.

    - `cut_markers`: end-of-turn tokens and leaked role headers; text from the first one on is
      dropped, in case the server ignored `stop` (empty turns the cut off).
    - `recover_calls`: a reply with no structured tool call whose text holds one in a form small
      models write (`<tool_call>`, a ```json fence, glaive's `<functioncall>`) becomes a real
      tool call when the request offers tools; the prose around it stays text.

    A call that repeats one quoted in an earlier tool result (a file or command output holding
    a `<tool_call>` block the model merely echoed) is data, not a call: it is never run,
    whether it came back as text or as a structured call the server parsed from text.
    """

    def __init__(
        self, wrapped: Model, *, cut_markers: Sequence[str] = (), recover_calls: bool = True
    ) -> None:
        super().__init__(wrapped)
        self.cut_markers = tuple(cut_markers)
        self.recover_calls = recover_calls

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        response = await self.wrapped.request(messages, model_settings, model_request_parameters)
        tool_names = {tool.name for tool in model_request_parameters.function_tools}
        return repair_response(
            response,
            cut_markers=self.cut_markers,
            tool_names=tool_names if self.recover_calls else set(),
            quoted=quoted_texts(messages),
        )


def quoted_texts(messages: Iterable[ModelMessage]) -> list[str]:
    """The data the model has been shown: every tool result and retry prompt so far."""
    texts: list[str] = []
    for message in messages:
        if not isinstance(message, ModelRequest):
            continue
        for part in message.parts:
            if isinstance(part, ToolReturnPart):
                texts.append(part.model_response_str())
            elif isinstance(part, RetryPromptPart) and isinstance(part.content, str):
                texts.append(part.content)
    return texts


def _call_key(name: str, arguments: object) -> str:
    return f"{name}\0{json.dumps(arguments, sort_keys=True, default=str)}"


_BARE_CALL = re.compile(r'\{\s*"name"\s*:')
_DECODER = json.JSONDecoder()
_MAX_BARE = 200  # bare JSON objects looked at per quoted text


def quoted_calls(texts: Iterable[str]) -> set[str]:
    """The tool calls written inside quoted data (tagged, fenced or bare JSON objects with a
    name and arguments), as comparable keys."""
    keys: set[str] = set()
    for text in texts:
        if "<tool_call>" in text or "```" in text or "<functioncall>" in text or "TOOLCALL" in text:
            keys.update(_call_key(c.name, c.arguments) for c in parse_tool_calls(text).calls)
        for count, match in enumerate(_BARE_CALL.finditer(text)):
            if count >= _MAX_BARE:
                break
            try:
                value, _ = _DECODER.raw_decode(text, match.start())
            except ValueError:
                continue
            arguments = value.get("arguments", value.get("parameters"))
            if isinstance(value.get("name"), str) and isinstance(arguments, dict):
                keys.add(_call_key(value["name"], arguments))
    return keys


def repair_response(
    response: ModelResponse,
    *,
    cut_markers: Sequence[str],
    tool_names: set[str],
    quoted: Sequence[str] = (),
) -> ModelResponse:
    """Apply the cut and the text tool-call recovery to one response; calls that repeat one
    found in `quoted` (earlier tool results) are not run."""
    parts: list[ModelResponsePart] = []
    cut_any = False
    raw_chars = 0
    for part in response.parts:
        if isinstance(part, TextPart):
            raw_chars += len(part.content)
            text, cut = (
                cut_at_markers(part.content, cut_markers) if cut_markers else (part.content, False)
            )
            cut_any |= cut
            if text:
                parts.append(replace(part, content=text))
        else:
            parts.append(part)

    recovered = 0
    refused = 0
    data_calls = quoted_calls(quoted)
    if data_calls:  # structured calls a server parsed out of echoed data
        parts, refused = _refuse_quoted(parts, data_calls)
    if tool_names and not any(isinstance(p, ToolCallPart) for p in parts):
        parts, recovered, refused_text = _recover_calls(parts, data_calls)
        refused += refused_text

    if not cut_any and not recovered and not refused:
        return response
    details: dict[str, Any] = dict(response.provider_details or {})
    details[REPAIR_KEY] = {
        "cut": cut_any,
        "recovered_calls": recovered,
        "refused_quoted_calls": refused,
        "raw_text_chars": raw_chars,
    }
    if refused:
        log.warning("quoted_calls_refused", count=refused)
    log.info("reply_repaired", cut=cut_any, recovered_calls=recovered, refused=refused)
    if not parts:
        parts = [TextPart("")]
    return replace(response, parts=parts, provider_details=details)


def _refuse_quoted(
    parts: list[ModelResponsePart], data_calls: set[str]
) -> tuple[list[ModelResponsePart], int]:
    """Structured calls that repeat a quoted one become a visible note instead."""
    out: list[ModelResponsePart] = []
    refused = 0
    for part in parts:
        if isinstance(part, ToolCallPart) and _call_key(part.tool_name, _args(part)) in data_calls:
            refused += 1
            out.append(
                TextPart(f"[{part.tool_name} call not run: it repeats a quoted tool result]")
            )
        else:
            out.append(part)
    return out, refused


def _args(part: ToolCallPart) -> object:
    try:
        return part.args_as_dict()
    except Exception:  # malformed JSON arguments: compare as given
        return part.args


def _recover_calls(
    parts: list[ModelResponsePart], data_calls: set[str]
) -> tuple[list[ModelResponsePart], int, int]:
    out: list[ModelResponsePart] = []
    calls: list[ToolCallPart] = []
    refused = 0
    for part in parts:
        if not isinstance(part, TextPart):
            out.append(part)
            continue
        parsed = parse_tool_calls(part.content)
        # Calls naming an unknown tool are kept too: pydantic-ai answers them with the list of
        # real tools, which a small model can act on. Calls quoted from data are not calls.
        own = [c for c in parsed.calls if _call_key(c.name, c.arguments) not in data_calls]
        refused += len(parsed.calls) - len(own)
        if not own:
            out.append(part)
            continue
        if parsed.content:
            out.append(replace(part, content=parsed.content))
        calls.extend(
            ToolCallPart(c.name, dict(c.arguments), tool_call_id=f"text_{uuid.uuid4().hex[:10]}")
            for c in own
        )
    return out + calls, len(calls), refused


def response_repair(response: ModelResponse) -> dict[str, Any]:
    """What `repair_response` did to a response (empty when nothing)."""
    return dict((response.provider_details or {}).get(REPAIR_KEY, {}))
