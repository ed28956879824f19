"""Client-side repair of model replies: cut at end-of-turn markers, recover tool calls from text.

Wraps any pydantic-ai model, so the OpenAI-compatible client and the scripted `FunctionModel`
of the tests go through the same repair.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import structlog
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    ModelResponsePart,
    TextPart,
    ToolCallPart,
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
        )


def repair_response(
    response: ModelResponse, *, cut_markers: Sequence[str], tool_names: set[str]
) -> ModelResponse:
    """Apply the cut and the text tool-call recovery to one response."""
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
    if tool_names and not any(isinstance(p, ToolCallPart) for p in parts):
        parts, recovered = _recover_calls(parts, tool_names)

    if not cut_any and not recovered:
        return response
    details: dict[str, Any] = dict(response.provider_details or {})
    details[REPAIR_KEY] = {
        "cut": cut_any,
        "recovered_calls": recovered,
        "raw_text_chars": raw_chars,
    }
    log.info("reply_repaired", cut=cut_any, recovered_calls=recovered)
    if not parts:
        parts = [TextPart("")]
    return replace(response, parts=parts, provider_details=details)


def _recover_calls(
    parts: list[ModelResponsePart], tool_names: set[str]
) -> tuple[list[ModelResponsePart], int]:
    out: list[ModelResponsePart] = []
    calls: list[ToolCallPart] = []
    for part in parts:
        if not isinstance(part, TextPart):
            out.append(part)
            continue
        parsed = parse_tool_calls(part.content)
        # Calls naming an unknown tool are kept too: pydantic-ai answers them with the list of
        # real tools, which a small model can act on.
        known = list(parsed.calls)
        if not known:
            out.append(part)
            continue
        if parsed.content:
            out.append(replace(part, content=parsed.content))
        calls.extend(
            ToolCallPart(c.name, dict(c.arguments), tool_call_id=f"text_{uuid.uuid4().hex[:10]}")
            for c in known
        )
    return out + calls, len(calls)


def response_repair(response: ModelResponse) -> dict[str, Any]:
    """What `repair_response` did to a response (empty when nothing)."""
    return dict((response.provider_details or {}).get(REPAIR_KEY, {}))
