"""The one record shape for training data: a validated `Conversation`, and its JSONL files.

Converters, the harvester and the generator all produce `Conversation`; the mixer turns it into
mlx-lm's chat format (`to_openai`), which the model's own chat template renders.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from punie.errors import first_problem
from punie.records.jsonl import read_records, write_records
from punie.records.toolcall_text import TextToolCall, parse_tool_calls

log = structlog.get_logger(__name__)

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """One function call made by the assistant; `arguments` is always a JSON object."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    name: str = Field(min_length=1)
    arguments: dict[str, Any]


class Message(BaseModel):
    """One chat message, OpenAI-style."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    training: bool = True
    """False for an assistant turn kept as context but never a loss target: a failed call that
    the next turn recovers from (axolotl's per-message `training` field)."""

    @model_validator(mode="after")
    def _fields_fit_role(self) -> Message:
        if not self.training and self.role != "assistant":
            raise ValueError(
                f"only an assistant message can be left out of training, not {self.role}"
            )
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"a {self.role} message cannot hold tool_calls")
        if self.role == "assistant" and not self.content.strip() and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        return self


class Meta(BaseModel):
    """Where a conversation came from; generators may add their own fields."""

    model_config = ConfigDict(extra="allow")

    source: str
    license: str
    row_id: str | None = None
    repository: str | None = None
    kind: str | None = None


class Conversation(BaseModel):
    """Messages, the tool schemas offered to the model, and provenance."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    meta: Meta

    @model_validator(mode="after")
    def _well_formed(self) -> Conversation:
        if not any(m.role == "assistant" and m.training for m in self.messages):
            raise ValueError("a conversation needs at least one assistant message to train on")
        for i, m in enumerate(self.messages):
            if m.role == "system" and i != 0:
                raise ValueError(f"message {i}: a system message may only come first")
        pending: set[str] = set()
        seen: set[str] = set()
        for i, m in enumerate(self.messages):
            for call in m.tool_calls:
                if call.id is not None:
                    if call.id in seen:
                        raise ValueError(f"message {i}: tool call id {call.id!r} is used twice")
                    seen.add(call.id)
                    pending.add(call.id)
            if m.role == "tool":
                if m.tool_call_id not in pending:
                    raise ValueError(
                        f"message {i}: tool result {m.tool_call_id!r} answers no preceding call"
                    )
                pending.discard(m.tool_call_id)
        for j, tool in enumerate(self.tools):
            function = tool.get("function")
            if tool.get("type") != "function" or not isinstance(function, dict):
                raise ValueError(f"tools[{j}] is not {{'type': 'function', 'function': {{...}}}}")
            if not function.get("name"):
                raise ValueError(f"tools[{j}] has no function name")
        return self

    @property
    def tool_names(self) -> list[str]:
        """The names of the offered functions, in order."""
        return [t["function"]["name"] for t in self.tools]

    def to_openai(self) -> dict[str, Any]:
        """The mlx-lm chat-format row: `{"messages": [...], "tools": [...]}`; an assistant turn
        left out of training carries `"training": false` (Punie's trainer masks it; stock mlx-lm
        and chat templates ignore the key).

        Tool-call arguments stay JSON objects: Qwen-style chat templates render them with
        `tojson`, so a string would be quoted twice.
        """
        messages: list[dict[str, Any]] = []
        for m in self.messages:
            out: dict[str, Any] = {"role": m.role, "content": m.content}
            if not m.training:
                out["training"] = False
            if m.tool_calls:
                out["tool_calls"] = [
                    {
                        **({"id": c.id} if c.id is not None else {}),
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in m.tool_calls
                ]
            if m.role == "tool":
                out["tool_call_id"] = m.tool_call_id
                if m.name is not None:
                    out["name"] = m.name
            messages.append(out)
        row: dict[str, Any] = {"messages": messages}
        if self.tools:
            row["tools"] = self.tools
        return row


def read_conversations(path: Path) -> Iterator[Conversation]:
    """Yield the conversations of a JSONL file; a bad line raises DataError naming file:line."""
    return read_records(
        path,
        Conversation,
        what="conversations",
        fix="regenerate the file with `punie data convert`",
    )


def write_conversations(path: Path, rows: Iterable[Conversation]) -> int:
    """Write conversations as JSONL, atomically; return how many were written.

    An interrupted write leaves the previous file (or none), never a half-written one.
    """
    count = write_records(path, rows, exclude_defaults=True)
    log.info("conversations_written", path=str(path), rows=count)
    return count


class RowRejected(Exception):
    """A source row cannot become a Conversation; `reason` is a short snake_case name."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


_PYTHON_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "dict": "object",
    "object": "object",
    "list": "array",
    "tuple": "array",
    "set": "array",
    "array": "array",
    "any": "string",
    "null": "null",
}


def _json_type(raw: Any) -> tuple[Any, bool]:
    """Map a Python-ish type name (`str`, `List[int]`, `int, optional`) to a JSON schema type."""
    if not isinstance(raw, str):
        return raw, False
    text = raw.strip()
    optional = text.lower().endswith(", optional")
    if optional:
        text = text[: -len(", optional")].strip()
    base = text.split("[", 1)[0].strip().lower()
    return _PYTHON_TYPES.get(base, "string" if base.startswith("union") else base), optional


def tool_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """One OpenAI function schema from the shapes public datasets use.

    Accepts `{"type": "function", "function": {...}}` or a bare `{name, description,
    parameters}`; `"type": "dict"` becomes `"object"`, Python type names become JSON ones, and
    xLAM's bare property map becomes an object schema (properties with a default or marked
    optional are not required).
    """
    function = spec.get("function") if isinstance(spec.get("function"), dict) else spec
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RowRejected("bad_tool_schema", "a function without a name")
    parameters = function.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise RowRejected("bad_tool_schema", f"{name}: parameters is not an object")
    parameters = dict(parameters)
    # xLAM writes a bare property map, which may itself have a property named "type".
    if (
        parameters
        and "properties" not in parameters
        and not isinstance(parameters.get("type"), str)
    ):
        properties, required = {}, []
        for key, prop in parameters.items():
            prop = dict(prop) if isinstance(prop, dict) else {"description": str(prop)}
            prop["type"], optional = _json_type(prop.get("type", "string"))
            if not optional and "default" not in prop:
                required.append(key)
            properties[key] = prop
        parameters = {"type": "object", "properties": properties, "required": required}
    else:
        if parameters.get("type") in ("dict", None) and parameters:
            parameters["type"] = "object"
        props = parameters.get("properties")
        if isinstance(props, dict):
            parameters["properties"] = {
                key: {**prop, "type": _json_type(prop["type"])[0]}
                if isinstance(prop, dict) and "type" in prop
                else prop
                for key, prop in props.items()
            }
    out = {"name": name.strip(), "description": str(function.get("description") or "")}
    out["parameters"] = parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": out}


def unique_tools(specs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalised schemas, keeping the first declaration of each function name."""
    tools: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if not isinstance(spec, dict):
            raise RowRejected("bad_tool_schema", f"a tool is a {type(spec).__name__}")
        schema = tool_schema(spec)
        tools.setdefault(schema["function"]["name"], schema)
    return list(tools.values())


class ConversationBuilder:
    """Builds one Conversation turn by turn, the way every converter needs it.

    Consecutive user turns merge, and so do consecutive assistant turns while the earlier one
    has no calls (prose, then the call); calls get ids `call_0`, `call_1`, ...; a tool result
    answers the oldest unanswered call; `build` trims trailing non-assistant turns.
    """

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._next_id = 0
        self._pending: deque[ToolCall] = deque()

    def system(self, text: str) -> None:
        if text.strip() and not self.messages:
            self.messages.append(Message(role="system", content=text.strip()))

    def user(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        self._pending.clear()
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == "user":
            last.content = f"{last.content}\n\n{text}"
        else:
            self.messages.append(Message(role="user", content=text))

    def assistant(self, content: str, calls: Sequence[TextToolCall] = ()) -> None:
        content = content.strip()
        if not content and not calls:
            return
        tool_calls = []
        for call in calls:
            tool_calls.append(
                ToolCall(id=f"call_{self._next_id}", name=call.name, arguments=call.arguments)
            )
            self._next_id += 1
        self._pending.extend(tool_calls)
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == "assistant" and not last.tool_calls:
            last.content = "\n\n".join(t for t in (last.content, content) if t)
            last.tool_calls = tool_calls
        else:
            self.messages.append(Message(role="assistant", content=content, tool_calls=tool_calls))

    def assistant_text(self, text: str) -> None:
        """An assistant turn written as text: its tool calls go through the shared parser."""
        parsed = parse_tool_calls(text)
        if parsed.errors:
            raise RowRejected(parsed.errors[0], text[:200])
        self.assistant(parsed.content, parsed.calls)

    def tool(self, content: str) -> None:
        if not self._pending:
            raise RowRejected("result_without_call", content[:200])
        call = self._pending.popleft()
        self.messages.append(
            Message(role="tool", content=content.strip(), tool_call_id=call.id, name=call.name)
        )

    def turn(self, role: str, content: str) -> None:
        """One turn by its OpenAI role: system, user, assistant (as text) or tool."""
        adders = {
            "system": self.system,
            "user": self.user,
            "assistant": self.assistant_text,
            "tool": self.tool,
        }
        if role not in adders:
            raise RowRejected("unknown_role", role)
        adders[role](content)

    @property
    def calls(self) -> list[ToolCall]:
        return [c for m in self.messages for c in m.tool_calls]

    def build(self, tools: list[dict[str, Any]], meta: Meta) -> Conversation:
        """Trim to the last assistant message, then validate."""
        while self.messages and self.messages[-1].role != "assistant":
            self.messages.pop()
        if not any(m.role == "assistant" for m in self.messages):
            raise RowRejected("no_assistant_turn")
        if meta.kind is None:
            calls = self.calls
            meta.kind = "tool_call" if calls else ("refusal" if tools else "direct_answer")
        try:
            return Conversation(messages=self.messages, tools=tools, meta=meta)
        except ValidationError as exc:
            raise RowRejected("invalid_record", first_problem(exc)[1]) from exc
