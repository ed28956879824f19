"""Run an eval suite through the real runtime against real servers, and score every run.

`evaluate` serves each target's model (and adapter) with `serve_model`, one server at a time, or
talks to a target's `base_url`; runs every task with `run_agent` concurrently under an anyio
`CapacityLimiter`, each in its own copy of the task's repository (a model that writes files
cannot spoil the next task); keeps each label's traces; scores the runs; and writes the report.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import structlog
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from punie.agent import AgentSettings, ToolDeps, code_tool_schemas, create_agent
from punie.data.tasks import TaskSpec
from punie.errors import ConfigError, ServerError
from punie.evaluation.metrics import RunScore, score_run
from punie.evaluation.overrun import TokenCounter
from punie.evaluation.report import EvalReport, TargetInfo, build_report, write_report
from punie.guards import Budgets, RunStatus
from punie.profiles import ModelProfile, resolve_profile
from punie.runner import RunTarget, run_agent
from punie.server import RunningServer
from punie.tracker import RunOutcome, TraceWriter

log = structlog.get_logger(__name__)

DEFAULT_BUDGETS = Budgets(max_requests=6, max_tool_calls=8, max_output_tokens=2048, max_seconds=180)
_WATCH_S = 0.5
_DEATH_SETTLE_S = 2.0
_COPY_IGNORE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.pyc", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"
)


@dataclass(frozen=True)
class EvalTarget:
    """One model (with an optional adapter) to evaluate, under a label for the report.

    Without `base_url`, `model` (a local mlx-lm folder or a Hugging Face id; None: the embedded
    model) is served for the evaluation. With `base_url`, `model` names the model for its
    profile and tokenizer: a local folder (then `default_model` is sent, which is what an
    `mlx_lm server` serving that folder expects) or a name sent as is.
    """

    label: str
    model: str | None = None
    adapter: Path | None = None
    base_url: str | None = None
    stop: tuple[str, ...] | None = None
    """Overrides the stop sequences of the model's profile."""


@dataclass(frozen=True)
class EvalOptions:
    """How the suite runs: concurrency, the wire settings and each run's budgets."""

    concurrency: int = 2
    no_stop: bool = False
    """Send no stop sequences and do not cut replies: reproduces the earlier failure."""
    max_tokens: int = 256
    budgets: Budgets = field(default_factory=lambda: DEFAULT_BUDGETS)

    def agent_settings(self) -> AgentSettings:
        return AgentSettings(
            max_tokens=self.max_tokens, send_stop=not self.no_stop, cut_replies=not self.no_stop
        )


def _local_model(model: str | None) -> Path | None:
    if model is None:
        from punie.models.embedded import embedded_model_dir

        return embedded_model_dir()
    path = Path(model).expanduser()
    return path if path.is_dir() else None


def target_profile(target: EvalTarget) -> tuple[ModelProfile, Path | None]:
    """The target's model profile and its local model folder (None for a remote name)."""
    folder = _local_model(target.model)
    name = str(folder) if folder is not None else str(target.model)
    profile = resolve_profile(name, model_dir=folder, stop_override=target.stop)
    return profile, folder


@dataclass(frozen=True)
class Endpoint:
    """Where a target's model answers; `server` is set when this evaluation started it."""

    base_url: str
    request_model: str
    server: RunningServer | None = None


@contextmanager
def target_endpoint(target: EvalTarget, folder: Path | None) -> Iterator[Endpoint]:
    """The target's endpoint, serving its model for the duration if needed."""
    if target.base_url is not None:
        if target.adapter is not None:
            raise ConfigError(
                f"target {target.label!r}: an adapter cannot be applied to a model at "
                f"{target.base_url}; serve it there with the adapter, or leave out --base-url"
            )
        from punie.server import DEFAULT_MODEL_NAME

        name = DEFAULT_MODEL_NAME if folder is not None else str(target.model or DEFAULT_MODEL_NAME)
        yield Endpoint(target.base_url, name)
        return
    from punie.server import serve_model

    served = folder if folder is not None else str(target.model)
    with serve_model(served, adapter=target.adapter) as server:
        yield Endpoint(server.base_url, server.request_model, server)


async def _copy_repo(repo: Path) -> Path:
    """A private copy of `repo` for one run (in a new temporary folder)."""
    copy = Path(tempfile.mkdtemp(prefix="punie-eval-")) / repo.name
    await anyio.to_thread.run_sync(
        partial(shutil.copytree, repo, copy, ignore=_COPY_IGNORE, symlinks=True)
    )
    return copy


async def run_tasks(
    tasks: Sequence[TaskSpec],
    *,
    base_url: str,
    request_model: str,
    profile: ModelProfile,
    target_name: str,
    trace_path: Path,
    options: EvalOptions,
    on_done: Callable[[TaskSpec, RunOutcome], None] | None = None,
    server: RunningServer | None = None,
) -> list[RunOutcome]:
    """Run every task against one OpenAI-compatible server, at most `options.concurrency` at once.

    Returns the outcomes in task order; every run is appended to `trace_path`. With `server`
    (one this process started), a server that dies or exceeds its memory bound stops the
    evaluation with a ServerError: the runs it spoiled are neither traced nor scored, those
    finished before are kept.
    """
    agent = create_agent(
        profile, base_url=base_url, model=request_model, settings=options.agent_settings()
    )
    run_target = RunTarget(model=target_name, profile=profile, base_url=base_url)
    trace = TraceWriter(trace_path)
    limiter = anyio.CapacityLimiter(max(1, options.concurrency))
    outcomes: list[RunOutcome | None] = [None] * len(tasks)
    failure: list[str] = []

    async def one(index: int, task: TaskSpec) -> None:
        async with limiter:
            workspace = await _copy_repo(Path(task.repo))
            try:
                outcome = await run_agent(
                    agent,
                    task.question,
                    ToolDeps.for_repo(workspace),
                    run_target,
                    budgets=options.budgets,
                )
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(
                        partial(shutil.rmtree, workspace.parent, ignore_errors=True)
                    )
        if server is not None:
            # A dropped connection shows a moment before the dead server is reaped.
            settle = _DEATH_SETTLE_S if outcome.status is RunStatus.MODEL_ERROR else 0.0
            line = await anyio.to_thread.run_sync(server.failure, settle)
            if line is not None:
                failure.append(line)
                watch_group.cancel_scope.cancel()
                return
        # The trace names the task's repository, not the throwaway copy the run worked in, so
        # harvested runs keep their repository (splits are made by repository).
        outcome = outcome.model_copy(update={"repo": task.repo})
        trace.append(outcome)
        outcomes[index] = outcome
        log.info("eval_task_done", task_id=task.id, status=outcome.status.value)
        if on_done is not None:
            on_done(task, outcome)

    async def watch() -> None:
        assert server is not None
        while (line := server.failure()) is None:
            await anyio.sleep(_WATCH_S)
        failure.append(line)
        watch_group.cancel_scope.cancel()

    async with anyio.create_task_group() as watch_group:
        if server is not None:
            watch_group.start_soon(watch)
        async with anyio.create_task_group() as group:
            for index, task in enumerate(tasks):
                group.start_soon(one, index, task)
        watch_group.cancel_scope.cancel()
    done = [o for o in outcomes if o is not None]
    if failure:
        raise ServerError(
            f"{failure[0]}; {len(done)} of {len(tasks)} runs finished before and were kept in "
            f"{trace_path}"
        )
    return done


def tool_schemas() -> dict[str, dict[str, Any]]:
    """The code tools' parameter schemas by tool name, as the agent offers them."""
    return {s["function"]["name"]: s["function"]["parameters"] for s in code_tool_schemas()}


def evaluate_target(
    tasks: Sequence[TaskSpec],
    target: EvalTarget,
    *,
    out_dir: Path,
    options: EvalOptions,
    progress: Progress | None = None,
) -> tuple[TargetInfo, list[RunScore]]:
    """Evaluate one target on the suite; its traces go to `out_dir/<label>/traces.jsonl`."""
    profile, folder = target_profile(target)
    counter = TokenCounter.for_model(folder)
    trace_path = out_dir / target.label / "traces.jsonl"
    trace_path.unlink(missing_ok=True)
    schemas = tool_schemas()
    markers = profile.cut_markers
    scores: list[RunScore] = []
    bar = progress.add_task(target.label, total=len(tasks)) if progress is not None else None

    def done(task: TaskSpec, outcome: RunOutcome) -> None:
        scores.append(
            score_run(
                task,
                outcome,
                label=target.label,
                markers=markers,
                counter=counter,
                schemas=schemas,
            )
        )
        if progress is not None and bar is not None:
            progress.advance(bar)

    name = str(folder) if folder is not None else str(target.model)
    with target_endpoint(target, folder) as endpoint:
        try:
            anyio.run(
                partial(
                    run_tasks,
                    tasks,
                    base_url=endpoint.base_url,
                    request_model=endpoint.request_model,
                    profile=profile,
                    target_name=name,
                    trace_path=trace_path,
                    options=options,
                    on_done=done,
                    server=endpoint.server,
                )
            )
        except ServerError as exc:
            raise ServerError(f"evaluating {target.label!r} failed: {exc}") from None
    order = {task.id: i for i, task in enumerate(tasks)}
    scores.sort(key=lambda s: order[s.task_id])
    info = TargetInfo(
        label=target.label,
        model=name,
        adapter=str(target.adapter) if target.adapter else None,
        base_url=target.base_url,
        stop_sequences=[] if options.no_stop else list(profile.stop_sequences),
        client_cut=not options.no_stop,
        tokenizer=counter.name,
        traces=str(trace_path),
    )
    return info, scores


def evaluate(
    tasks: Sequence[TaskSpec],
    targets: Sequence[EvalTarget],
    *,
    out_dir: Path,
    concurrency: int = 2,
    no_stop: bool = False,
    max_tokens: int = 256,
    budgets: Budgets | None = None,
    show_progress: bool = True,
) -> EvalReport:
    """Run the suite on every target, side by side, and write the report into `out_dir`.

    Writes `report.md`, `report.json`, `report.png`, `results.jsonl` (one row per run:
    run_id, task_id, label, passed, ...) and `<label>/traces.jsonl`.
    """
    if not targets:
        raise ConfigError("nothing to evaluate: give a model (--model or --base-url)")
    labels = [t.label for t in targets]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"target labels must be unique, got {labels}; rename with LABEL=...")
    options = EvalOptions(
        concurrency=concurrency,
        no_stop=no_stop,
        max_tokens=max_tokens,
        budgets=budgets or DEFAULT_BUDGETS,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    infos: list[TargetInfo] = []
    scores: list[RunScore] = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
        transient=False,
    ) as progress:
        for target in targets:
            log.info("eval_target_start", label=target.label, tasks=len(tasks))
            info, target_scores = evaluate_target(
                tasks, target, out_dir=out_dir, options=options, progress=progress
            )
            infos.append(info)
            scores.extend(target_scores)
    report = build_report(infos, scores, no_stop=no_stop, concurrency=concurrency)
    return write_report(report, scores, out_dir)


def parse_target(spec: str) -> EvalTarget:
    """`LABEL=MODEL[:ADAPTER]` (a model folder or id, an optional adapter folder), or
    `LABEL=http://host:port/v1` (a server already running), as `--compare` takes it."""
    label, sep, rest = spec.partition("=")
    if not sep or not label.strip() or not rest.strip():
        raise ConfigError(
            f"--compare {spec!r}: expected LABEL=MODEL[:ADAPTER] or LABEL=URL, "
            "e.g. tuned=~/models/smollm2:adapters/run1"
        )
    label, rest = label.strip(), rest.strip()
    if rest.startswith(("http://", "https://")):
        return EvalTarget(label, base_url=rest)
    model, _, adapter = rest.partition(":")
    if model in ("", "embedded"):
        return EvalTarget(label, model=None, adapter=Path(adapter) if adapter else None)
    return EvalTarget(label, model=model, adapter=Path(adapter) if adapter else None)
