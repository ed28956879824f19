"""The forgetting check: did tuning for tools cost the model its general answers?

On held-out generic conversations, per target: the held-out loss on the assistant turns
(mlx-lm, in a child process) and direct-answer accuracy: the conversation's first question is
asked through the real agent, in an empty workspace, and counts as answered directly when the
run ends `answered` without calling a tool. The mean token F1 of those answers against the
conversation's own answer is reported beside it (SQuAD-style, lowercased words).
"""

from __future__ import annotations

import re
import statistics
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import anyio
import structlog
from pydantic import BaseModel

from punie.errors import DataError
from punie.evaluation.evaluate import EvalOptions, EvalTarget, run_tasks, target_session
from punie.mlx.train.loss import held_out_loss
from punie.records.conversation import Conversation, read_conversations
from punie.records.jsonl import write_text
from punie.records.task import TaskSpec
from punie.records.trace import RunStatus
from punie.runtime.session import local_model_dir

log = structlog.get_logger(__name__)

_WORDS = re.compile(r"\w+")


class ForgettingResult(BaseModel):
    """One target's forgetting numbers."""

    label: str
    loss: float | None
    loss_tokens: int
    questions: int
    direct_answer_rate: float
    answer_f1: float


class ForgettingReport(BaseModel):
    """Forgetting numbers per target, and the conversations file they came from."""

    conversations: str
    results: list[ForgettingResult]


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style F1 of the lowercased words of `prediction` against `reference`."""
    pred = _WORDS.findall(prediction.lower())
    ref = _WORDS.findall(reference.lower())
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def direct_questions(conversations: Sequence[Conversation]) -> list[tuple[str, str]]:
    """(question, reference answer) of conversations whose first reply is plain text."""
    pairs = []
    for conversation in conversations:
        messages = conversation.messages
        user = next((i for i, m in enumerate(messages) if m.role == "user"), None)
        if user is None or user + 1 >= len(messages):
            continue
        reply = messages[user + 1]
        if reply.role == "assistant" and not reply.tool_calls and reply.content.strip():
            pairs.append((messages[user].content, reply.content))
    return pairs


def forgetting_check(
    conversations_path: Path,
    targets: Sequence[EvalTarget],
    *,
    out_dir: Path,
    limit: int = 32,
    max_tokens: int = 256,
    concurrency: int = 2,
    with_loss: bool = True,
) -> ForgettingReport:
    """Loss and direct-answer accuracy per target on held-out generic conversations.

    The loss needs a local model folder; a target at a `base_url` with no local folder gets
    `loss=None`. Writes `forgetting.json` and `<label>/forgetting_traces.jsonl` to `out_dir`.
    """
    rows = list(read_conversations(conversations_path))[:limit]
    pairs = direct_questions(rows)
    if not pairs:
        raise DataError(
            f"{conversations_path}: none of the first {limit} conversations starts with a "
            "question answered in plain text; pass held-out generic conversations"
        )
    options = EvalOptions(concurrency=concurrency, max_tokens=max_tokens)
    results = []
    with tempfile.TemporaryDirectory(prefix="punie-forgetting-") as empty:
        tasks = [
            TaskSpec(
                id=f"forgetting-{i}",
                repo=empty,
                repo_name="(empty)",
                category="direct_answer",
                question=question,
                kind="forgetting",
            )
            for i, (question, _) in enumerate(pairs)
        ]
        for target in targets:
            use_local = target.base_url is None or target.model is not None
            folder = local_model_dir(target.model) if use_local else None
            loss = None
            if with_loss and folder is not None:
                loss = held_out_loss(
                    folder, conversations_path, adapter=target.adapter, limit=limit
                )
            traces = Path(out_dir) / target.label / "forgetting_traces.jsonl"
            with target_session(target, options, traces) as session:
                outcomes = anyio.run(run_tasks, session, tasks, options)
            direct = [o.status is RunStatus.ANSWERED and not o.tool_calls for o in outcomes]
            f1 = [
                token_f1(o.output or "", reference) if ok else 0.0
                for o, ok, (_, reference) in zip(outcomes, direct, pairs, strict=True)
            ]
            results.append(
                ForgettingResult(
                    label=target.label,
                    loss=loss.loss if loss else None,
                    loss_tokens=loss.tokens if loss else 0,
                    questions=len(pairs),
                    direct_answer_rate=sum(direct) / len(direct),
                    answer_f1=statistics.fmean(f1),
                )
            )
            log.info("forgetting_target_done", **results[-1].model_dump())
    report = ForgettingReport(conversations=str(conversations_path), results=results)
    write_text(Path(out_dir) / "forgetting.json", report.model_dump_json(indent=2) + "\n")
    return report


def forgetting_table(report: ForgettingReport) -> str:
    """The forgetting numbers as a Markdown table, one column per target."""
    labels = [r.label for r in report.results]
    lines = [
        "## Forgetting check",
        "",
        "| metric | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
        "| held-out loss | "
        + " | ".join("–" if r.loss is None else f"{r.loss:.3f}" for r in report.results)
        + " |",
        "| direct answers | "
        + " | ".join(f"{r.direct_answer_rate * 100:.0f}%" for r in report.results)
        + " |",
        "| answer F1 | " + " | ".join(f"{r.answer_f1:.2f}" for r in report.results) + " |",
        "| questions | " + " | ".join(str(r.questions) for r in report.results) + " |",
    ]
    return "\n".join(lines) + "\n"
