"""The trace harvester: the agent's own answered runs, cleaned, as training Conversations.

Only runs that ended `answered` are kept (optionally only those an eval marked passed); runs with
placeholder tool results are dropped, duplicates removed (and, optionally, runs whose question
the training data already holds), secrets redacted and long tool results capped exactly as the
runtime caps them. With an eval's results, each kept run is named after its task's repository.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError
from pydantic_ai.messages import (
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from punie.data.redact import Redactor
from punie.errors import DataError
from punie.records.conversation import Conversation, Message, Meta, ToolCall, write_conversations
from punie.records.jsonl import iter_json_lines
from punie.records.toolset import SYSTEM_PROMPT, code_tool_schemas
from punie.records.trace import RunOutcome, read_traces
from punie.runtime.tools import DEFAULT_OUTPUT_LIMIT, cap_output

log = structlog.get_logger(__name__)

#: Tool results that stand in for a real result: a run holding one teaches nothing true.
_PLACEHOLDER = re.compile(
    r"^\s*\[?\s*(tool (execution|call) (completed|succeeded|done|finished)|no output|"
    r"placeholder|result omitted|\.\.\.)\s*\]?\.?\s*$",
    re.IGNORECASE,
)


def is_placeholder_result(content: str) -> bool:
    """Whether a tool result is empty or a stand-in such as `[Tool execution completed]`."""
    return not content.strip() or bool(_PLACEHOLDER.match(content))


class _Dropped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class HarvestReport:
    """Runs read, kept, and dropped per reason; secrets redacted; results truncated."""

    traces: list[str]
    runs_read: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    redacted: Counter[str] = field(default_factory=Counter)
    truncated_results: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "traces": self.traces,
            "runs_read": self.runs_read,
            "kept": self.kept,
            "dropped": dict(self.dropped.most_common()),
            "redacted": dict(self.redacted.most_common()),
            "truncated_results": self.truncated_results,
        }


def read_verified(path: Path) -> set[str]:
    """The run ids an eval results file marks as passed (rows need `run_id` and `passed`)."""
    return set(read_verified_repositories(path))


def read_verified_repositories(path: Path) -> dict[str, str | None]:
    """The run ids an eval results file marks as passed, each with its task's `repo_name`."""
    path = Path(path)
    fix = "pass the results file `punie eval` wrote"
    status: dict[str, bool] = {}
    repositories: dict[str, str | None] = {}
    for number, row in iter_json_lines(path, what="eval results", fix=fix):
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("run_id"), str)
            or not isinstance(row.get("passed"), bool)
        ):
            raise DataError(
                f"{path}:{number}: an eval result row needs a string 'run_id' and a boolean "
                f"'passed'; {fix}"
            )
        status[row["run_id"]] = row["passed"]
        name = row.get("repo_name")
        repositories[row["run_id"]] = name if isinstance(name, str) and name else None
    return {run_id: repositories[run_id] for run_id, passed in status.items() if passed}


@dataclass
class _Converter:
    redactor: Redactor
    output_limit: int
    truncated: int = 0
    retried: set[str] = field(default_factory=set)

    def tool_result(self, content: str) -> str:
        capped = cap_output(content, self.output_limit)
        if capped != content:
            self.truncated += 1
        return self.redactor.text(capped)

    def conversation(self, outcome: RunOutcome, repository: str | None = None) -> Conversation:
        try:
            history = ModelMessagesTypeAdapter.validate_python(outcome.transcript)
        except ValidationError as exc:
            raise _Dropped("unreadable_transcript") from exc
        messages: list[Message] = []
        system = next(
            (m.instructions for m in history if isinstance(m, ModelRequest) and m.instructions),
            None,
        )
        messages.append(Message(role="system", content=system or SYSTEM_PROMPT))
        for entry in history:
            if isinstance(entry, ModelRequest):
                for part in entry.parts:
                    messages += self._request_part(part)
            elif isinstance(entry, ModelResponse):
                text = "".join(p.content for p in entry.parts if isinstance(p, TextPart)).strip()
                calls = [
                    ToolCall(
                        id=p.tool_call_id,
                        name=p.tool_name,
                        arguments=self.redactor.value(p.args_as_dict()),
                    )
                    for p in entry.parts
                    if isinstance(p, ToolCallPart)
                ]
                if text or calls:
                    messages.append(
                        Message(
                            role="assistant", content=self.redactor.text(text), tool_calls=calls
                        )
                    )
        if messages[-1].role != "assistant" or messages[-1].tool_calls:
            raise _Dropped("no_final_answer")
        messages = [self._unless_retried(m) for m in messages]
        try:
            return Conversation(
                messages=messages,
                tools=code_tool_schemas(),
                meta=Meta(
                    source="harvested",
                    license="own runs",
                    row_id=outcome.run_id,
                    repository=repository or Path(outcome.repo).name,
                    kind="tool_call" if outcome.tool_calls else "direct_answer",
                    model=outcome.model,
                ),
            )
        except ValidationError as exc:
            raise _Dropped("invalid_record") from exc

    def _unless_retried(self, message: Message) -> Message:
        """An assistant turn whose call had to be made again (an unknown tool, arguments that
        failed validation) stays as context, out of the loss: the model learns the retry, not
        the mistake."""
        if any(c.id in self.retried for c in message.tool_calls):
            return message.model_copy(update={"training": False})
        return message

    def _request_part(self, part: Any) -> list[Message]:
        if isinstance(part, SystemPromptPart):
            return []  # the system message is rebuilt once, first
        if isinstance(part, UserPromptPart):
            content = part.content if isinstance(part.content, str) else str(part.content)
            return [Message(role="user", content=self.redactor.text(content))]
        if isinstance(part, ToolReturnPart):
            if part.outcome == "retried":
                self.retried.add(part.tool_call_id)
            content = part.model_response_str()
            if is_placeholder_result(content):
                raise _Dropped("placeholder_result")
            return [
                Message(
                    role="tool",
                    content=self.tool_result(content),
                    tool_call_id=part.tool_call_id,
                    name=part.tool_name,
                )
            ]
        if isinstance(part, RetryPromptPart):
            if part.tool_call_id:
                self.retried.add(part.tool_call_id)
            content = self.redactor.text(part.model_response())
            if part.tool_name is None:
                return [Message(role="user", content=content)]
            return [
                Message(
                    role="tool",
                    content=content,
                    tool_call_id=part.tool_call_id,
                    name=part.tool_name,
                )
            ]
        return []


def first_question(conversation: Conversation) -> str:
    """The conversation's first user message, stripped (what dedupes a harvest)."""
    return next((m.content for m in conversation.messages if m.role == "user"), "").strip()


def _dedupe_key(conversation: Conversation) -> str:
    question = first_question(conversation)
    calls = [
        [c.name, json.dumps(c.arguments, sort_keys=True)]
        for m in conversation.messages
        for c in m.tool_calls
    ]
    answer = conversation.messages[-1].content
    blob = json.dumps([question.strip(), calls, answer.strip()])
    return hashlib.sha256(blob.encode()).hexdigest()


def harvest_outcomes(
    outcomes: Iterable[RunOutcome],
    report: HarvestReport,
    *,
    verified: set[str] | Mapping[str, str | None] | None = None,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
    on_run: Callable[[], None] | None = None,
    exclude_questions: Set[str] = frozenset(),
) -> Iterator[Conversation]:
    """The conversations worth training on among `outcomes`, counting every drop in `report`.

    `verified` holds the run ids to keep (a mapping also names each run's repository);
    a run whose question is in `exclude_questions` (already in the training data) is dropped.
    """
    repositories = verified if isinstance(verified, Mapping) else {}
    redactor = Redactor(counts=report.redacted)
    seen: set[str] = set()
    for outcome in outcomes:
        report.runs_read += 1
        if on_run is not None:
            on_run()
        try:
            if not outcome.answered:
                raise _Dropped(f"status_{outcome.status.value}")
            if verified is not None and outcome.run_id not in verified:
                raise _Dropped("not_verified")
            if any(
                call.error is None and is_placeholder_result(call.result or "")
                for call in outcome.tool_calls
            ):
                raise _Dropped("placeholder_result")
            converter = _Converter(redactor, output_limit)
            conversation = converter.conversation(outcome, repositories.get(outcome.run_id))
            if any(
                not call.executed and call.tool_call_id not in converter.retried
                for call in outcome.tool_calls
            ):
                raise _Dropped("unexecuted_call")  # a guard stopped it: not a retry to learn
            if first_question(conversation) in exclude_questions:
                raise _Dropped("question_already_in_training")
            key = _dedupe_key(conversation)
            if key in seen:
                raise _Dropped("duplicate")
            seen.add(key)
        except _Dropped as drop:
            report.dropped[drop.reason] += 1
            log.info("run_dropped", run_id=outcome.run_id, reason=drop.reason)
            continue
        report.truncated_results += converter.truncated
        report.kept += 1
        yield conversation


def harvest_traces(
    traces: Path | list[Path],
    out: Path,
    *,
    verified: Path | None = None,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
    on_run: Callable[[], None] | None = None,
    exclude_questions: Set[str] = frozenset(),
) -> HarvestReport:
    """Turn traces files into a Conversation JSONL at `out` (written atomically).

    With `verified` (an eval's results JSONL) only the runs it marks passed are kept, each
    named after its task's repository; `exclude_questions` drops runs the training data holds.
    """
    paths = [Path(p) for p in (traces if isinstance(traces, list) else [traces])]
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"traces file {path} does not exist: pass the traces JSONL of punie run"
            )
    passed = read_verified_repositories(verified) if verified is not None else None
    report = HarvestReport(traces=[str(p) for p in paths])

    def outcomes() -> Iterator[RunOutcome]:
        for path in paths:
            yield from read_traces(path)

    write_conversations(
        Path(out),
        harvest_outcomes(
            outcomes(),
            report,
            verified=passed,
            output_limit=output_limit,
            on_run=on_run,
            exclude_questions=exclude_questions,
        ),
    )
    log.info("harvest_done", **report.to_dict())
    return report
