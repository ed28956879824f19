"""The agent factory: a pydantic-ai Agent on an OpenAI-compatible server, with the code tools.

Stop sequences come from the model's profile and are set on the agent's `ModelSettings`, so
every request of every run carries them; replies are cut client-side too (see
`punie.runtime.recovery`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import structlog
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.models import Model
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.profiles import ModelProfile as PydanticAIProfile
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider
from pydantic_ai.settings import ModelSettings

from punie.errors import ToolError
from punie.records.profile import ModelProfile
from punie.records.tool_result import ResultKind
from punie.records.toolset import SYSTEM_PROMPT
from punie.records.trace import ToolCallRecord
from punie.runtime.recovery import RecoveringModel
from punie.runtime.tools import (
    DEFAULT_OUTPUT_LIMIT,
    RunningCommands,
    Sandbox,
    Workspace,
    detect_sandbox,
    grep,
    read_file,
    run_command,
    write_file,
)
from punie.runtime.tracker import Tracker

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class AgentSettings:
    """How the agent talks to its model."""

    max_tokens: int = 512
    temperature: float = 0.0
    send_stop: bool = True
    """False reproduces the earlier failure: no stop sequences on the wire."""
    cut_replies: bool = True
    """False turns off the client-side cut at end-of-turn markers."""
    recover_text_calls: bool = True
    logit_bias: dict[str, int] | None = None
    """Token id -> bias, sent as is (e.g. to suppress end-of-turn tokens in a test)."""
    frequency_penalty: float | None = None
    """OpenAI's `frequency_penalty`, sent as is (mlx-lm applies it over the last 20 tokens)."""
    tool_retries: int = 2
    request_timeout_s: float = 300.0
    system_prompt: str = SYSTEM_PROMPT


@dataclass
class ToolDeps:
    """What the tools of one run need: the fenced workspace, the run's tracker, the sandbox,
    the run's running commands (so a signal or the budget kills them) and its in-flight calls."""

    workspace: Workspace
    tracker: Tracker = field(default_factory=Tracker)
    sandbox: Sandbox = field(default_factory=detect_sandbox)
    command_timeout_s: float = 30.0
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    """Characters one tool result may hold (`Budgets.max_tool_output_chars`)."""
    commands: RunningCommands = field(default_factory=RunningCommands)
    in_flight: dict[int, ToolCallRecord] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop_reason: str | None = None
    """Why the run is being stopped from outside (a signal), for its trace."""

    def flush_in_flight(self, why: str) -> list[ToolCallRecord]:
        """Record every call still running as ended by `why` (the run is ending); a call
        finishing later is not recorded twice."""
        with self.lock:
            records = list(self.in_flight.values())
            self.in_flight.clear()
        for record in records:
            record.error = f"not finished: {why}"
            self.tracker.record_tool_call(record)
        return records

    @classmethod
    def for_repo(cls, repo: Path | str, **kwargs: Any) -> ToolDeps:
        return cls(workspace=Workspace(Path(repo)), **kwargs)


def model_settings(profile: ModelProfile, settings: AgentSettings) -> ModelSettings:
    """The request settings every model call of the agent carries."""
    result = ModelSettings(
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        timeout=settings.request_timeout_s,
    )
    if settings.send_stop:
        result["stop_sequences"] = list(profile.stop_sequences)
    if settings.logit_bias:
        result["logit_bias"] = dict(settings.logit_bias)
    if settings.frequency_penalty is not None:
        result["frequency_penalty"] = settings.frequency_penalty
    return result


def openai_compatible_model(
    base_url: str,
    model: str,
    *,
    api_key: str | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> OpenAIChatModel:
    """An OpenAI chat-completions model on a local server (mlx-lm, vLLM, llama.cpp).

    Local servers tokenize special tokens found in message content, so the profile turns on
    pydantic-ai's breaking of such tokens: a file holding `<|im_start|>system` stays data.
    """
    provider = OpenAICompatibleProvider(
        "punie-local",
        base_url=base_url,
        api_key=api_key or "not-needed",
        http_client=http_client,
        profile=PydanticAIProfile(may_tokenize_special_tokens_in_content=True),
    )
    return OpenAIChatModel(model, provider=provider)


def create_agent(
    profile: ModelProfile,
    *,
    base_url: str | None = None,
    model: str | Model = "default_model",
    settings: AgentSettings | None = None,
    api_key: str | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> Agent[ToolDeps, str]:
    """Build the Punie agent.

    `model` is the name sent to the server at `base_url`, or a ready pydantic-ai `Model`
    (the tests pass a `FunctionModel`). Run it with `punie.runtime.runner.run_agent`, which adds the
    budgets, guards and the trace; `agent.run(..., deps=ToolDeps.for_repo(path))` works too.
    """
    settings = settings or AgentSettings()
    if isinstance(model, str):
        if base_url is None:
            raise ValueError("create_agent needs base_url when model is a name")
        inner: Model = openai_compatible_model(
            base_url, model, api_key=api_key, http_client=http_client
        )
    else:
        inner = model
    wrapped = RecoveringModel(
        inner,
        cut_markers=profile.cut_markers if settings.cut_replies else (),
        recover_calls=settings.recover_text_calls,
    )
    return Agent(
        wrapped,
        deps_type=ToolDeps,
        output_type=str,
        instructions=settings.system_prompt,
        model_settings=model_settings(profile, settings),
        tools=code_tools(retries=settings.tool_retries),
    )


def _record(
    ctx: RunContext[ToolDeps], name: str, arguments: dict[str, Any], body: Callable[[], str]
) -> str:
    """Run a tool body and record the call in the run's tracker.

    Any failure becomes the tool's result (`Error: ...`) the model can act on: a ToolError as
    it is, any other exception as one line naming it, never a traceback.
    """
    deps = ctx.deps
    tracker = deps.tracker
    start = time.perf_counter()
    # The runner recorded the call as the model wrote it; outside a run, record the typed call.
    record = tracker.asked_call(ctx.tool_call_id) or ToolCallRecord(
        step=tracker.step,
        name=name,
        arguments={k: v for k, v in arguments.items() if v is not None},
        tool_call_id=ctx.tool_call_id,
    )
    record.executed = True
    with deps.lock:
        deps.in_flight[id(record)] = record
    result: str | None = None
    error: str | None = None
    kind: str = ResultKind.ERROR
    try:
        result = body()
        kind = getattr(result, "kind", kind)
    except ToolError as exc:
        error, kind = str(exc), exc.kind
    except Exception as exc:  # a bug or an input no check foresaw: still only a result
        log.exception("tool_crashed", tool=name)
        error = f"{name} failed: {type(exc).__name__}: {str(exc)[:500]}"
    finally:
        with deps.lock:
            mine = deps.in_flight.pop(id(record), None) is not None
    record.result, record.error, record.kind = result, error, str(kind)
    if name == "run_command":
        record.sandbox = deps.sandbox.kind
    record.duration_ms = (time.perf_counter() - start) * 1000
    if mine:  # else the run already recorded it as interrupted
        tracker.record_tool_call(record)
    return result if error is None else f"Error: {error}"


def _run_command(ctx: RunContext[ToolDeps], command: str) -> str:
    """Run a shell command in the repository root; returns its exit code and output."""
    d = ctx.deps
    return _record(
        ctx,
        "run_command",
        {"command": command},
        lambda: run_command(
            d.workspace,
            command,
            timeout_s=d.command_timeout_s,
            output_limit=d.output_limit,
            sandbox=d.sandbox,
            running=d.commands,
        ),
    )


def _grep(ctx: RunContext[ToolDeps], pattern: str, path: str = ".", glob: str = "") -> str:
    """Search files for a regular expression; returns `path:line: text` lines.

    Args:
        pattern: regular expression.
        path: file or folder to search.
        glob: only files matching this glob, such as `*.py`.
    """
    arguments = {"pattern": pattern, "path": path, "glob": glob or None}
    d = ctx.deps
    return _record(
        ctx,
        "grep",
        arguments,
        lambda: grep(
            d.workspace,
            pattern,
            path,
            glob=glob or None,
            sandbox=d.sandbox,
            running=d.commands,
            output_limit=d.output_limit,
        ),
    )


def _read_file(ctx: RunContext[ToolDeps], path: str, start_line: int = 1, end_line: int = 0) -> str:
    """Read a text file, or only its lines start_line to end_line.

    Args:
        path: the file.
        start_line: first line to read (1-based).
        end_line: last line to read; 0 reads to the end.
    """
    start = start_line if start_line > 1 else None
    end = end_line if end_line > 0 else None
    arguments = {"path": path, "start_line": start, "end_line": end}
    d = ctx.deps
    return _record(
        ctx,
        "read_file",
        arguments,
        lambda: read_file(d.workspace, path, start, end, max_chars=d.output_limit),
    )


def _write_file(ctx: RunContext[ToolDeps], path: str, content: str) -> str:
    """Write a text file, replacing it if it exists.

    Args:
        path: the file.
        content: the whole new content.
    """
    return _record(
        ctx,
        "write_file",
        {"path": path, "content": content},
        lambda: write_file(ctx.deps.workspace, path, content),
    )


def code_tools(*, retries: int = 2) -> list[Tool[ToolDeps]]:
    """The four code tools, each recorded in the run's tracker."""
    return [
        Tool(fn, name=name, takes_ctx=True, max_retries=retries)
        for name, fn in (
            ("run_command", _run_command),
            ("grep", _grep),
            ("read_file", _read_file),
            ("write_file", _write_file),
        )
    ]


def derived_tool_schemas() -> list[dict[str, Any]]:
    """The code tools as pydantic-ai derives their schemas from the functions (these must equal
    `punie.records.toolset.CODE_TOOLS`, which training data uses; a test checks)."""
    schemas = []
    for tool in code_tools():
        definition = tool.tool_def
        schemas.append(
            {
                "type": "function",
                "function": {
                    "name": definition.name,
                    "description": definition.description or "",
                    "parameters": definition.parameters_json_schema,
                },
            }
        )
    return schemas
