"""A generated task as the two records it becomes: the training `Conversation` and the eval
`TaskSpec`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from punie.data.generate.toolbox import Step
from punie.records.conversation import Conversation, Message, Meta, ToolCall
from punie.records.task import TaskCategory, TaskSpec
from punie.records.toolset import SYSTEM_PROMPT, code_tool_schemas


@dataclass(frozen=True)
class GeneratedTask:
    """A task and the conversation that answers it."""

    task: TaskSpec
    conversation: Conversation


@dataclass(frozen=True)
class Expectation:
    """What the evaluator accepts as the first call: the tool, each argument's acceptable values
    (BFCL style), the arguments free to take any value, and what its real result must hold."""

    tool: str | None = None
    arguments: dict[str, list[Any]] = field(default_factory=dict)
    free: tuple[str, ...] = ()
    result_facts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Origin:
    """Where tasks come from: the repository (root on disk, name, licence)."""

    root: str
    repo_name: str
    license: str


def make_task(
    origin: Origin,
    kind: str,
    category: TaskCategory,
    question: str,
    steps: Sequence[Step],
    answer: str,
    expect: Expectation,
    required_facts: Sequence[str],
) -> GeneratedTask:
    """The conversation (the agent's prompt and tools, the real tool results) and the task spec;
    a step marked as a mistake stays in the conversation as context, out of the loss."""
    digest = hashlib.sha1(f"{origin.repo_name}\0{kind}\0{question}".encode()).hexdigest()[:10]
    task_id = f"{origin.repo_name}-{kind}-{digest}"
    messages = [
        Message(role="system", content=SYSTEM_PROMPT),
        Message(role="user", content=question),
    ]
    for number, step in enumerate(steps):
        call_id = f"call_{number}"
        messages.append(
            Message(
                role="assistant",
                tool_calls=[ToolCall(id=call_id, name=step.name, arguments=step.arguments)],
                training=not step.mistake,
            )
        )
        messages.append(
            Message(role="tool", content=step.result, tool_call_id=call_id, name=step.name)
        )
    messages.append(Message(role="assistant", content=answer))
    meta = Meta(
        source="generated",
        license=origin.license,
        row_id=task_id,
        repository=origin.repo_name,
        kind=kind,
        category=category,
    )
    conversation = Conversation(messages=messages, tools=code_tool_schemas(), meta=meta)
    spec = TaskSpec(
        id=task_id,
        repo=origin.root,
        repo_name=origin.repo_name,
        category=category,
        question=question,
        expected_tool=expect.tool,
        expected_arguments=expect.arguments,
        optional_arguments=list(expect.free),
        required_facts=list(required_facts),
        result_facts=list(expect.result_facts),
        kind=kind,
    )
    return GeneratedTask(task=spec, conversation=conversation)
