"""Turn tool calls that small models write as text into structured calls.

One parser, shared by the runtime (a text reply becomes real tool calls) and the dataset
converters (glaive, Hermes, When2Call rows). Pure functions, no I/O.

Forms understood, anywhere in the text, several in a row:

- ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (Qwen, Hermes); the closing tag
  may be missing at the end of the text; Hermes' Python-repr bodies (``{'name': 'x', ...}``) are
  read as Python literals, never evaluated.
- ``<TOOLCALL>[{"name": ..., "arguments": {...}}, ...]</TOOLCALL>`` (When2Call).
- a ```` ```json ```` (or bare ```` ``` ````) fence holding ``{"name", "arguments"}`` or a list of
  them; a fence holding other JSON is ordinary content.
- glaive's ``<functioncall> {"name": "x", "arguments": '{...}'}``: single-quoted JSON arguments
  with unescaped apostrophes and newlines inside, ``\\'`` escapes, plain-object arguments, an extra
  closing brace; a ``<|endoftext|>`` right after the call is dropped with it.
- a reply that is nothing but one ``{"name", "arguments"}`` JSON object.

``"parameters"`` is accepted for ``"arguments"``; arguments may also be a string holding JSON.
Raw newlines inside JSON strings are accepted (models write file contents that way).
Arguments that are ``null``, absent or an empty string become ``{}``; any other non-object (an
array, a number, ``Infinity``/``NaN`` anywhere) is an error, because a tool takes named arguments.
Call-looking text that cannot be parsed stays in the content and is named in ``errors`` as
``<form>_<problem>``: forms ``tool_call``, ``toolcall_list``, ``fence``, ``functioncall``;
problems ``not_json``, ``truncated``, ``missing_name``, ``arguments_not_json``,
``arguments_not_object``.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ParsedReply", "TextToolCall", "cut_at_markers", "parse_tool_calls"]


@dataclass(frozen=True)
class TextToolCall:
    """One tool call recovered from text: a function name and its JSON-object arguments."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ParsedReply:
    """A reply split into its prose, the calls found in it and why any call-like text failed."""

    content: str
    calls: tuple[TextToolCall, ...]
    errors: tuple[str, ...]


class _CallError(Exception):
    """A named reason why one call-looking span could not be parsed."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite JSON constant {name}")


# Python's json accepts NaN/Infinity by default; tool arguments must be real JSON.
def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999 overflows to inf, which no JSON can carry
        raise ValueError(f"number {literal} is out of range")
    return value


# strict=False: models put raw newlines inside JSON strings (file contents, glaive arguments).
_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float, strict=False
)
_WS = re.compile(r"\s*")
_END_OF_TEXT = "<|endoftext|>"
_OPENERS = re.compile(r"<tool_call>|<TOOLCALL>|<functioncall>|```")
_FENCE_OPEN = re.compile(r"```([^\n`]*)\n")
# Info strings of fences that may hold a call; any other fence (```python ...) is content.
_CALL_FENCES = frozenset({"", "json", "json5", "tool_call", "tool_code", "javascript"})
_GLAIVE_HEAD = re.compile(r'\{\s*"name"\s*:\s*')
_GLAIVE_ARGS_KEY = re.compile(r'\s*,\s*"(?:arguments|parameters)"\s*:\s*')
_CLOSE_BRACE = re.compile(r"\s*\}")


def parse_tool_calls(text: str) -> ParsedReply:
    """Find every text tool call in ``text``; the prose outside them is the content (stripped)."""
    calls: list[TextToolCall] = []
    errors: list[str] = []
    pieces: list[str] = []
    pos = 0
    scan = 0
    while (match := _OPENERS.search(text, scan)) is not None:
        opener = match.group()
        if opener == "```":
            found = _parse_fence(text, match.start())
        elif opener == "<functioncall>":
            found = _parse_functioncall(text, match.end())
        elif opener == "<TOOLCALL>":
            found = _parse_tagged(text, match.end(), "</TOOLCALL>", "toolcall_list")
        else:
            found = _parse_tagged(text, match.end(), "</tool_call>", "tool_call")
        new_calls, error, end = found
        if error is not None:
            errors.append(error)
        if new_calls:
            pieces.append(text[pos : match.start()])
            calls.extend(new_calls)
            pos = end
        scan = max(end, match.end())
    pieces.append(text[pos:])
    if not calls and not errors:
        whole = _whole_reply_call(text)
        if whole is not None:
            return ParsedReply(content="", calls=(whole,), errors=())
    content = "\n\n".join(piece.strip() for piece in pieces if piece.strip())
    return ParsedReply(content=content, calls=tuple(calls), errors=tuple(errors))


def cut_at_markers(text: str, markers: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest marker (end-of-turn token or leaked role header).

    Returns the text before it, right-stripped, and whether anything was cut.
    """
    first = min((i for m in markers if m and (i := text.find(m)) >= 0), default=-1)
    if first < 0:
        return text, False
    return text[:first].rstrip(), True


# --- the forms ---------------------------------------------------------------------------


_Found = tuple[list[TextToolCall], str | None, int]


def _parse_tagged(text: str, start: int, closer: str, form: str) -> _Found:
    """``<tool_call>`` / ``<TOOLCALL>`` bodies: JSON first, then a Python-repr literal."""
    body_start = _skip_blank(text, start)
    try:
        value, end = _decode_at(text, body_start)
    except json.JSONDecodeError as err:
        # Decoding up to the tag failed: read the tag's body as a whole instead.
        close = text.find(closer, body_start)
        region_end = close if close >= 0 else len(text)
        value = _python_literal(text[body_start:region_end])
        if value is None:
            problem = "truncated" if close < 0 and _is_truncation(err, text) else "not_json"
            return [], f"{form}_{problem}", region_end
        end = region_end
    close = text.find(closer, end)
    if close >= 0 and not text[end:close].strip().strip("}").strip():
        end = close + len(closer)  # also swallows an extra closing brace before the tag
    try:
        return _calls_from(value), None, end
    except _CallError as err:
        return [], f"{form}_{err.problem}", end


def _parse_fence(text: str, start: int) -> _Found:
    """A code fence whose whole body is a call object or a list of them."""
    head = _FENCE_OPEN.match(text, start)
    if head is None:
        return [], None, start + 3
    close = text.find("```", head.end())
    body_end = close if close >= 0 else len(text)
    end = close + 3 if close >= 0 else len(text)
    body = text[head.end() : body_end].strip()
    if head.group(1).strip().lower() not in _CALL_FENCES or not body.startswith(("{", "[")):
        return [], None, end
    try:
        value, used = _decode_at(body, 0)
        if body[used:].strip():
            raise json.JSONDecodeError("extra data after the call", body, used)
    except json.JSONDecodeError as err:
        if '"name"' in body and ('"arguments"' in body or '"parameters"' in body):
            problem = "truncated" if close < 0 and _is_truncation(err, body) else "not_json"
            return [], f"fence_{problem}", end
        return [], None, end
    if not _looks_like_calls(value):
        return [], None, end
    try:
        return _calls_from(value), None, end
    except _CallError as err:
        return [], f"fence_{err.problem}", end


def _parse_functioncall(text: str, start: int) -> _Found:
    """glaive's ``<functioncall> {"name": "x", "arguments": '{...}'}``, quirks included."""
    obj_start = _skip_blank(text, start)
    try:
        value, end = _decode_at(text, obj_start)
    except json.JSONDecodeError as err:
        try:
            call, end = _glaive_call(text, obj_start)
        except _CallError as call_err:
            problem = call_err.problem
            if problem == "not_json" and _is_truncation(err, text):
                problem = "truncated"
            return [], f"functioncall_{problem}", len(text)
        return [call], None, _after_functioncall(text, end)
    try:
        calls = _calls_from(value)
    except _CallError as call_err:
        return [], f"functioncall_{call_err.problem}", _after_functioncall(text, end)
    return calls, None, _after_functioncall(text, end)


def _glaive_call(text: str, pos: int) -> tuple[TextToolCall, int]:
    """Read ``{"name": "x", "arguments": <value>}`` where the value may be single-quoted JSON."""
    head = _GLAIVE_HEAD.match(text, pos)
    if head is None:
        call_text = text[pos:].split(_END_OF_TEXT, 1)[0]
        has_name = call_text.startswith("{") and '"name"' in call_text
        raise _CallError("not_json" if has_name else "missing_name")
    try:
        name, name_end = _DECODER.raw_decode(text, head.end())
    except json.JSONDecodeError as err:
        raise _CallError("truncated" if _is_truncation(err, text) else "not_json") from err
    if not isinstance(name, str) or not name.strip():
        raise _CallError("missing_name")
    key = _GLAIVE_ARGS_KEY.match(text, name_end)
    if key is None:
        rest = text[name_end:].strip()
        if rest.startswith("}"):
            return TextToolCall(name=name, arguments={}), text.index("}", name_end) + 1
        raise _CallError("truncated" if _is_cut(rest) else "not_json")
    value_start = key.end()
    if text.startswith("'", value_start):
        arguments, close = _single_quoted_arguments(text, value_start)
        return TextToolCall(name=name, arguments=arguments), close
    try:
        value, value_end = _decode_at(text, value_start)
    except json.JSONDecodeError as err:
        raise _CallError(
            "truncated" if _is_truncation(err, text) else "arguments_not_json"
        ) from err
    close = _CLOSE_BRACE.match(text, value_end)
    if close is None:
        raise _CallError("truncated" if _is_cut(text[value_end:]) else "not_json")
    return TextToolCall(name=name, arguments=_arguments_from(value)), close.end()


def _single_quoted_arguments(text: str, quote: int) -> tuple[dict[str, Any], int]:
    """Arguments written as JSON inside single quotes, apostrophes inside left unescaped.

    The closing quote is the first ``'`` followed by the call's closing brace whose body is
    JSON; apostrophes inside the JSON never satisfy both.
    """
    candidates = [
        (q, close.end())
        for q in _find_all(text, "'", quote + 1)
        if (close := _CLOSE_BRACE.match(text, q + 1)) is not None
    ]
    if not candidates:
        raise _CallError("truncated")
    for q, end in candidates:
        body = text[quote + 1 : q]
        value = _loads_or_none(body)
        if value is None and "\\'" in body:
            value = _loads_or_none(body.replace("\\'", "'"))
        if value is not None:
            return _arguments_from(value[0]), end
    raise _CallError("arguments_not_json")


def _after_functioncall(text: str, end: int) -> int:
    """Skip a stray extra ``}`` and the glaive end-of-turn token that follow a call."""
    extra = _CLOSE_BRACE.match(text, end)
    if extra is not None:
        end = extra.end()
    after = _skip_blank(text, end)
    if text.startswith(_END_OF_TEXT, after):
        return after + len(_END_OF_TEXT)
    return end


def _whole_reply_call(text: str) -> TextToolCall | None:
    """A reply that is exactly one ``{"name", "arguments"}`` object and nothing else."""
    body = text.strip()
    if not body.startswith("{"):
        return None
    try:
        value, used = _decode_at(body, 0)
    except json.JSONDecodeError:
        return None
    if body[used:].strip() or not _looks_like_calls(value) or isinstance(value, list):
        return None
    try:
        return _calls_from(value)[0]
    except _CallError:
        return None


# --- values --------------------------------------------------------------------------------


def _calls_from(value: Any) -> list[TextToolCall]:
    """A call object, a list of them, or an OpenAI ``{"function": {...}}`` wrapper."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _CallError("missing_name")
    calls = []
    for item in items:
        if not isinstance(item, dict):
            raise _CallError("missing_name")
        if isinstance(item.get("function"), dict) and "name" not in item:
            item = item["function"]
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _CallError("missing_name")
        raw = item["arguments"] if "arguments" in item else item.get("parameters")
        calls.append(TextToolCall(name=name.strip(), arguments=_arguments_from(raw)))
    return calls


def _arguments_from(raw: Any) -> dict[str, Any]:
    """Normalise arguments: object as is, JSON string decoded, null/absent/'' -> {}."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        decoded = _loads_or_none(raw)
        if decoded is None:
            raise _CallError("arguments_not_json")
        raw = decoded[0]
        if raw is None:
            return {}
    if not isinstance(raw, dict):
        raise _CallError("arguments_not_object")
    return raw


def _looks_like_calls(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(
        isinstance(item, dict)
        and (
            ("name" in item and ("arguments" in item or "parameters" in item))
            or isinstance(item.get("function"), dict)
        )
        for item in items
    )


def _decode_at(text: str, pos: int) -> tuple[Any, int]:
    """Decode one JSON value at ``pos`` (NaN/Infinity refused); returns it and its end."""
    try:
        return _DECODER.raw_decode(text, pos)
    except ValueError as err:
        if isinstance(err, json.JSONDecodeError):
            raise
        raise json.JSONDecodeError(str(err), text, pos) from err


def _loads_or_none(body: str) -> tuple[Any] | None:
    """The whole of ``body`` as JSON, wrapped in a 1-tuple (JSON null is a value), or None."""
    try:
        value, used = _decode_at(body, _skip_blank(body, 0))
    except json.JSONDecodeError:
        return None
    if body[used:].strip():
        return None
    return (value,)


def _python_literal(region: str) -> Any | None:
    """Hermes writes Python reprs (``{'name': 'x', 'arguments': {...}}``); read, never run."""
    body = region.strip()
    while body.startswith("\\n"):
        body = body[2:].lstrip()
    while body.endswith("\\n"):
        body = body[:-2].rstrip()
    if not body.startswith(("{", "[")):
        return None
    try:
        value = ast.literal_eval(body)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return value


def _is_truncation(err: json.JSONDecodeError, text: str) -> bool:
    """Whether decoding failed because the text ended, not because it is malformed."""
    if err.msg.startswith("Unterminated string"):
        return True
    return _is_cut(text[err.pos :])


def _is_cut(rest: str) -> bool:
    rest = rest.strip()
    if rest.endswith(_END_OF_TEXT):
        rest = rest[: -len(_END_OF_TEXT)].strip()
    return not rest


def _skip_blank(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


def _find_all(text: str, needle: str, start: int) -> list[int]:
    found = []
    while (i := text.find(needle, start)) >= 0:
        found.append(i)
        start = i + 1
    return found
