"""Run an eval suite through the real runtime against real servers, and score every run.

`evaluate` opens a runtime session per target (serving its model and adapter, one server at a
time or all at once, or talking to its `base_url`); runs every task in it concurrently under an
anyio `CapacityLimiter`, each in its own copy of the task's repository (a model that writes files
cannot spoil the next task); keeps each label's traces; scores the runs; and writes the report.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio
import structlog

from punie.errors import ConfigError, ServerError
from punie.evaluation.metrics import RunScore, score_run
from punie.evaluation.overrun import TokenCounter
from punie.evaluation.report import EvalReport, TargetInfo, build_report, write_report
from punie.mlx.machine import cores_each
from punie.progress import ProgressTracker, progress
from punie.records.task import TaskSpec
from punie.records.toolset import tool_parameters
from punie.records.trace import RunOutcome, RunStatus
from punie.runtime.agent import AgentSettings
from punie.runtime.guards import Budgets
from punie.runtime.session import Session, open_session

log = structlog.get_logger(__name__)

_WATCH_S = 0.5
_DEATH_SETTLE_S = 2.0

# The model's budgets are requests, tool calls and tokens, so a slower machine gives the same
# scores; wall-clock time is only a generous safety net, and a run it ends is `timed_out`.
# Tool results are capped at 4,000 characters (~1,100 tokens): the demo trains at 1,024 tokens,
# and a whole module read back (16,000 characters, ~5,000 tokens) made every later turn of that
# run a 5,000-token prompt, minutes each on a 2-core CPU.
DEFAULT_BUDGETS = Budgets(
    max_requests=6,
    max_tool_calls=8,
    max_output_tokens=2048,
    max_seconds=900,
    max_tool_output_chars=4000,
)
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
    frequency_penalty: float | None = None

    def agent_settings(self) -> AgentSettings:
        return AgentSettings(
            max_tokens=self.max_tokens,
            send_stop=not self.no_stop,
            cut_replies=not self.no_stop,
            frequency_penalty=self.frequency_penalty,
        )


async def _copy_repo(repo: Path) -> Path:
    """A private copy of `repo` for one run (in a new temporary folder)."""
    copy = Path(tempfile.mkdtemp(prefix="punie-eval-")) / repo.name
    await anyio.to_thread.run_sync(
        partial(shutil.copytree, repo, copy, ignore=_COPY_IGNORE, symlinks=True)
    )
    return copy


async def run_tasks(
    session: Session,
    tasks: Sequence[TaskSpec],
    options: EvalOptions,
    on_done: Callable[[TaskSpec, RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Run every task in the session, at most `options.concurrency` at once.

    Returns the outcomes in task order. Each run works in a throwaway copy of its task's
    repository and is traced by the session (under the task's repository), also when Ctrl-C
    cuts the evaluation short. When the session started its server, a server that dies or
    exceeds its memory bound stops the evaluation with a ServerError: the runs it spoiled are
    traced as they ended but never scored, those finished before are kept.
    """
    server = session.endpoint.server
    limiter = anyio.CapacityLimiter(max(1, options.concurrency))
    outcomes: list[RunOutcome | None] = [None] * len(tasks)
    failure: list[str] = []

    async def one(index: int, task: TaskSpec) -> None:
        async with limiter:
            workspace = await _copy_repo(Path(task.repo))
            try:
                # The trace names the task's repository, not the copy, so harvested runs keep
                # their repository (splits are made by repository).
                outcome = await session.ask(
                    task.question, workspace, budgets=options.budgets, trace_repo=task.repo
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
        where = session.trace.path if session.trace is not None else "the traces"
        raise ServerError(
            f"{failure[0]}; {len(done)} of {len(tasks)} runs finished before and were kept in "
            f"{where}"
        )
    return done


@dataclass
class _TargetRun:
    """One target's open session, the scores of its finished runs and what the report says
    about it."""

    target: EvalTarget
    session: Session
    on_done: Callable[[TaskSpec, RunOutcome], None]
    scores: list[RunScore]
    info: Callable[[], TargetInfo]


def target_session(
    target: EvalTarget,
    options: EvalOptions,
    trace_path: Path,
    *,
    blas_threads: int | None = None,
) -> AbstractContextManager[Session]:
    """The session `target` runs in (its server, when Punie serves it, stopped on exit), with
    the options' wire settings and its traces in `trace_path`."""
    return open_session(
        target.model,
        base_url=target.base_url,
        adapter=target.adapter,
        stop=target.stop,
        settings=options.agent_settings(),
        trace_path=trace_path,
        blas_threads=blas_threads,
    )


@contextmanager
def _open_target(
    tasks: Sequence[TaskSpec],
    target: EvalTarget,
    *,
    out_dir: Path,
    options: EvalOptions,
    tracker: ProgressTracker,
    blas_threads: int | None = None,
) -> Iterator[_TargetRun]:
    """Open `target`'s session (its server, when it serves one, with `blas_threads` BLAS
    workers) with its traces in `out_dir/<label>/traces.jsonl`; every finished run is scored
    and advances `tracker`."""
    trace_path = out_dir / target.label / "traces.jsonl"
    trace_path.unlink(missing_ok=True)
    schemas = tool_parameters()
    scores: list[RunScore] = []
    with target_session(target, options, trace_path, blas_threads=blas_threads) as session:
        profile, folder = session.profile, session.model_dir
        counter = TokenCounter.for_model(folder)

        def done(task: TaskSpec, outcome: RunOutcome) -> None:
            scores.append(
                score_run(
                    task,
                    outcome,
                    label=target.label,
                    markers=profile.cut_markers,
                    counter=counter,
                    schemas=schemas,
                )
            )
            tracker.advance(note=f"{sum(s.passed for s in scores)} passed ({target.label})")

        def info() -> TargetInfo:
            order = {task.id: i for i, task in enumerate(tasks)}
            scores.sort(key=lambda s: order[s.task_id])
            return TargetInfo(
                label=target.label,
                model=session.target.model,
                adapter=str(target.adapter) if target.adapter else None,
                base_url=target.base_url,
                stop_sequences=[] if options.no_stop else list(profile.stop_sequences),
                client_cut=not options.no_stop,
                frequency_penalty=options.frequency_penalty,
                tokenizer=counter.name,
                traces=str(trace_path),
            )

        yield _TargetRun(target, session, done, scores, info)


def evaluate_target(
    tasks: Sequence[TaskSpec],
    target: EvalTarget,
    *,
    out_dir: Path,
    options: EvalOptions,
    show_progress: bool = True,
) -> tuple[TargetInfo, list[RunScore]]:
    """Evaluate one target on the suite; its traces go to `out_dir/<label>/traces.jsonl`.

    Progress: a bar on a terminal, a plain line at least every 30 s in a log."""
    with (
        progress(
            f"eval {target.label}", len(tasks), unit="tasks", enabled=show_progress
        ) as tracker,
        _open_target(tasks, target, out_dir=out_dir, options=options, tracker=tracker) as run,
    ):
        try:
            anyio.run(run_tasks, run.session, tasks, options, run.on_done)
        except ServerError as exc:
            raise ServerError(f"evaluating {target.label!r} failed: {exc}") from None
        return run.info(), run.scores


def evaluate_together(
    tasks: Sequence[TaskSpec],
    targets: Sequence[EvalTarget],
    *,
    out_dir: Path,
    options: EvalOptions,
    show_progress: bool = True,
) -> list[tuple[TargetInfo, list[RunScore]]]:
    """Evaluate every target at the same time (one server each, one event loop, one progress
    line). On a 2-core CPU an eval uses about one core (MLX runs most of a decode step on one
    thread), so two at once finish sooner than one after the other, provided the servers share
    the cores: each gets `cores_each(len(targets))` BLAS workers, since OpenBLAS's spinning
    workers made two 2-worker servers on 2 cores 5.5x slower. A server that fails stops
    all of them, as in `evaluate_target`; Ctrl-C too."""
    labels = " + ".join(t.label for t in targets)
    total = len(tasks) * len(targets)
    threads = cores_each(len(targets))
    with (
        progress(f"eval {labels}", total, unit="runs", enabled=show_progress) as tracker,
        ExitStack() as stack,
    ):
        runs = [
            stack.enter_context(
                _open_target(
                    tasks,
                    t,
                    out_dir=out_dir,
                    options=options,
                    tracker=tracker,
                    blas_threads=threads,
                )
            )
            for t in targets
        ]
        failures: list[str] = []

        async def all_targets() -> None:
            async with anyio.create_task_group() as group:

                async def one(run: _TargetRun) -> None:
                    try:
                        await run_tasks(run.session, tasks, options, run.on_done)
                    except ServerError as exc:
                        failures.append(f"evaluating {run.target.label!r} failed: {exc}")
                        group.cancel_scope.cancel()

                for run in runs:
                    group.start_soon(one, run)

        anyio.run(all_targets)
        if failures:
            raise ServerError("; ".join(failures))
        return [(run.info(), run.scores) for run in runs]


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
    together: bool = False,
    frequency_penalty: float | None = None,
) -> EvalReport:
    """Run the suite on every target, side by side, and write the report into `out_dir`.

    `together`: all targets at once (`evaluate_together`), else one after the other. Writes
    `report.md`, `report.json`, `report.png`, `results.jsonl` (one row per run: run_id,
    task_id, label, passed, ...) and `<label>/traces.jsonl`.
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
        frequency_penalty=frequency_penalty,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("eval_targets_start", labels=labels, tasks=len(tasks), together=together)
    if together and len(targets) > 1:
        results = evaluate_together(
            tasks, targets, out_dir=out_dir, options=options, show_progress=show_progress
        )
    else:
        results = [
            evaluate_target(
                tasks, target, out_dir=out_dir, options=options, show_progress=show_progress
            )
            for target in targets
        ]
    infos = [info for info, _ in results]
    scores = [score for _, target_scores in results for score in target_scores]
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
