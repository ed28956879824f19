"""The turn probe: each assistant turn of a held-out gold conversation, generated from its history.

The agent eval runs whole tasks through a server, so one early slip hides every later turn and a
few dozen tasks take minutes. The probe asks a narrower question of many more turns, cheaply:
given the gold history up to an assistant turn (the real tool results included), does the model
write that turn? Every held-out task with a gold conversation gives its turns:

- `first_call`: the first turn of a tool task; right when it calls the task's tool with arguments
  the BFCL-style checker accepts (`check_call`).
- `next_call`: a later tool call (multi-step, recovery); right when it names the gold call's tool
  and the checker accepts its arguments against the gold call's.
- `answer`: the final turn after the tool results; right when it calls no tool, writes no
  tool-protocol markup (an echoed `<tool_response>` block is not an answer) and holds every
  required fact: the answer *from the result*.
- `direct`: the only turn of a task without tools; right when it calls no tool and holds the facts.

Every turn must also end at the end-of-turn token within `max_tokens`. Generation is greedy and
batched (mlx-lm's `BatchGenerator`) in an MLX child, the shared system-and-tools prefix computed
once; rates come with 95% Wilson intervals.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from punie.errors import DataError
from punie.evaluation.checks import check_call, missing_facts
from punie.evaluation.intervals import rate_interval
from punie.mlx.child import call, failing_as_model_error
from punie.records.conversation import Conversation
from punie.records.task import TaskSpec
from punie.records.toolcall_text import parse_tool_calls

log = structlog.get_logger(__name__)

TurnRole = Literal["first_call", "next_call", "answer", "direct"]
ROLES: tuple[TurnRole, ...] = ("first_call", "next_call", "answer", "direct")
DEFAULT_MAX_TOKENS = 160
IN_FLIGHT = 32
"""Prompts generated at once (mlx-lm's completion batch), each holding a prefix-cache copy."""
PROTOCOL_MARKERS = ("<tool_response>", "</tool_response>", "<tool_call>", "<|im_start|>")
"""Text an answer must not hold: echoing the tool result's markup back is not an answer."""


@dataclass(frozen=True)
class TurnCase:
    """One assistant turn to generate: the gold history before it and what makes it right."""

    task_id: str
    category: str
    role: TurnRole
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    expected_tool: str | None
    expected_arguments: dict[str, list[Any]]
    optional_arguments: list[str]
    required_facts: list[str]


@dataclass(frozen=True)
class TurnVerdict:
    """What the model wrote for one case and whether it was right."""

    task_id: str
    category: str
    role: TurnRole
    right: bool
    ended: bool
    reply: str
    errors: list[str]


def turn_cases(tasks: Iterable[TaskSpec], conversations: Iterable[Conversation]) -> list[TurnCase]:
    """The cases of every task whose gold conversation is given (matched by `meta.row_id`)."""
    gold: dict[str, Conversation] = {}
    for conversation in conversations:
        if conversation.meta.row_id:
            gold[conversation.meta.row_id] = conversation
    cases: list[TurnCase] = []
    for task in tasks:
        conversation = gold.get(task.id)
        if conversation is not None:
            cases.extend(_cases_of(task, conversation.to_openai()))
    return cases


def _cases_of(task: TaskSpec, row: Mapping[str, Any]) -> list[TurnCase]:
    messages: list[dict[str, Any]] = list(row["messages"])
    tools = list(row.get("tools") or [])
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    out: list[TurnCase] = []
    for number, index in enumerate(turns):
        message = messages[index]
        calls = message.get("tool_calls") or []
        common = {
            "task_id": task.id,
            "category": task.category,
            "messages": messages[:index],
            "tools": tools,
            "optional_arguments": list(task.optional_arguments),
        }
        if calls:
            function = calls[0].get("function", calls[0])
            arguments = function.get("arguments", {})
            if isinstance(arguments, str):
                arguments = json.loads(arguments)
            if number == 0:
                out.append(
                    TurnCase(
                        **common,
                        role="first_call",
                        expected_tool=task.expected_tool,
                        expected_arguments=dict(task.expected_arguments),
                        required_facts=[],
                    )
                )
            else:
                out.append(
                    TurnCase(
                        **common,
                        role="next_call",
                        expected_tool=function["name"],
                        expected_arguments={k: [v] for k, v in arguments.items()},
                        required_facts=[],
                    )
                )
        else:
            role: TurnRole = "direct" if number == 0 else "answer"
            out.append(
                TurnCase(
                    **common,
                    role=role,
                    expected_tool=None,
                    expected_arguments={},
                    required_facts=list(task.required_facts),
                )
            )
    return out


def score_case(case: TurnCase, reply: str, ended: bool) -> TurnVerdict:
    """Whether `reply` (the generated turn, end-of-turn token removed) is right for `case`."""
    parsed = parse_tool_calls(reply)
    errors: list[str] = [] if ended else ["did not end its turn within the token budget"]
    schemas = {
        t["function"]["name"]: t["function"].get("parameters")
        for t in case.tools
        if "function" in t
    }
    if case.role in ("first_call", "next_call"):
        if not parsed.calls:
            errors.append("called no tool")
        else:
            first = parsed.calls[0]
            verdict = check_call(
                first.name,
                dict(first.arguments),
                expected_tool=case.expected_tool or "",
                expected_arguments=case.expected_arguments,
                optional_arguments=case.optional_arguments if case.role == "first_call" else (),
                schema=schemas.get(first.name),
            )
            errors.extend(verdict.errors)
    else:
        if parsed.calls:
            errors.append(f"called {parsed.calls[0].name} instead of answering")
        if any(marker in reply for marker in PROTOCOL_MARKERS):
            errors.append("wrote tool-protocol markup instead of an answer")
        missing = missing_facts(parsed.content, case.required_facts)
        if missing:
            errors.append(f"missing facts {missing}")
    return TurnVerdict(case.task_id, case.category, case.role, not errors, ended, reply, errors)


def summarize_turns(verdicts: Sequence[TurnVerdict]) -> dict[str, Any]:
    """Per role (and all turns): n, rate and 95% interval; and the rate of tasks right on every
    turn."""
    by_role: dict[str, list[bool]] = defaultdict(list)
    by_task: dict[str, list[bool]] = defaultdict(list)
    for v in verdicts:
        by_role[v.role].append(v.right)
        by_role["all_turns"].append(v.right)
        by_task[v.task_id].append(v.right)
    by_role["tasks_all_right"] = [all(flags) for flags in by_task.values()]
    return {name: rate_interval(flags).model_dump() for name, flags in by_role.items()}


def probe_turns(
    model: Path,
    cases: Sequence[TurnCase],
    *,
    adapter: Path | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> list[TurnVerdict]:
    """Generate every case's turn with `model` (+ `adapter`) in an MLX child and score it.

    Raises ModelImportError naming the child, its peak memory and its log when it fails.
    """
    if not cases:
        raise DataError("the turn probe got no cases: no held-out task has a gold conversation")
    request = {
        "model": str(model),
        "adapter": str(adapter) if adapter is not None else None,
        "prompts": [{"messages": c.messages, "tools": c.tools} for c in cases],
        "max_tokens": max_tokens,
    }
    adapter_part = f" with adapter {adapter}" if adapter else ""
    with failing_as_model_error(f"the turn probe of {model}{adapter_part}"):
        replies = call("turn probe", "punie.evaluation.turns:generate_turns", request)
    verdicts = [score_case(c, r["text"], r["ended"]) for c, r in zip(cases, replies, strict=True)]
    log.info(
        "turn_probe",
        model=str(model),
        adapter=str(adapter),
        cases=len(cases),
        right=sum(v.right for v in verdicts),
    )
    return verdicts


def generate_turns(
    model: str, adapter: str | None, prompts: list[dict[str, Any]], max_tokens: int
) -> list[dict[str, Any]]:
    """The child's side of `probe_turns`: each prompt's greedy turn, batched, the prompts' common
    prefix (the system turn with the tools) computed once."""
    import copy

    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import BatchGenerator
    from mlx_lm.models.cache import make_prompt_cache

    from punie.mlx.chat_template import TOOLS_CHAT_TEMPLATE
    from punie.mlx.train.frozen_cache import common_prefix
    from punie.mlx.train.masking import end_of_turn_ids
    from punie.progress import progress, stderr_console
    from punie.records.profile import resolve_profile

    lm, tokenizer = load(model, adapter_path=adapter)
    lm.eval()
    profile = resolve_profile(model, model_dir=Path(model))
    eot = set(end_of_turn_ids(tokenizer, profile.end_of_turn))
    template = getattr(tokenizer, "chat_template", None) or TOOLS_CHAT_TEMPLATE
    encoded = [
        tokenizer.apply_chat_template(
            p["messages"],
            tools=p["tools"] or None,
            add_generation_prompt=True,
            chat_template=template,
        )
        for p in prompts
    ]
    shared = min(common_prefix(encoded[0], e) for e in encoded) if encoded else 0
    shared = min(shared, *(len(e) - 1 for e in encoded))
    prefix_cache = make_prompt_cache(lm)
    if shared > 0:
        lm(mx.array([encoded[0][:shared]]), cache=prefix_cache)
        mx.eval([c.state for c in prefix_cache])
    stops = sorted(eot | set(tokenizer.eos_token_ids))
    generator = BatchGenerator(lm, stop_tokens=[[t] for t in stops])
    # Prompts go in as earlier ones finish, each with its own copy of the prefix cache: all of
    # them at once held a copy per prompt (8.8 GB of RSS for 373 held-out turns).
    pending = list(range(len(encoded)))[::-1]
    uid_of: dict[int, int] = {}

    def insert(count: int) -> None:
        chosen = [pending.pop() for _ in range(min(count, len(pending)))]
        if not chosen:
            return
        caches = [copy.deepcopy(prefix_cache) for _ in chosen] if shared > 0 else None
        uids = generator.insert(
            [encoded[i][shared:] for i in chosen], [max_tokens] * len(chosen), caches=caches
        )
        uid_of.update(zip(chosen, uids, strict=True))

    insert(IN_FLIGHT)
    tokens: dict[int, list[int]] = defaultdict(list)
    ended: dict[int, bool] = {}
    with progress("turn probe", len(encoded), unit="turns", console=stderr_console()) as bar:
        while responses := generator.next_generated():
            for r in responses:
                if r.finish_reason != "stop":
                    tokens[r.uid].append(r.token)
                if r.finish_reason is not None:
                    ended[r.uid] = r.finish_reason == "stop"
                    bar.advance()
                    insert(1)
    generator.close()
    uids = [uid_of[i] for i in range(len(encoded))]
    return [{"text": tokenizer.decode(tokens[u]), "ended": ended.get(u, False)} for u in uids]
