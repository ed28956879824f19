"""A runtime session: the one way Punie wires a model to an agent and a trace.

`open_session` serves a local model (the embedded one by default, with an adapter) or connects to
an OpenAI-compatible server at `base_url`, resolves the model's profile (its stop sequences),
builds the agent and opens the traces file. `punie run`, the evaluator, the forgetting check and
`examples/run_agent.py` all go through it, so every run of every entry point is traced the same
way, including a run cut short by Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import platformdirs
from pydantic_ai import Agent

from punie.errors import ConfigError
from punie.records.profile import (
    ModelProfile,
    resolve_profile,
    resolve_served_profile,
    served_model_folder,
)
from punie.records.trace import RunOutcome, TraceWriter
from punie.runtime.agent import AgentSettings, ToolDeps, create_agent
from punie.runtime.guards import Budgets
from punie.runtime.interrupts import Interrupted, stop_on_signals
from punie.runtime.runner import RunHooks, RunTarget, run_agent
from punie.runtime.tools import Sandbox, detect_sandbox

if TYPE_CHECKING:
    from punie.mlx.server import RunningServer

DEFAULT_REQUEST_MODEL = "default_model"


def default_trace_path() -> Path:
    """Where runs are traced unless told otherwise: the user's data folder."""
    return platformdirs.user_data_path("punie") / "traces.jsonl"


@dataclass(frozen=True)
class Endpoint:
    """Where the model answers: the server's URL and the `model` each request names."""

    base_url: str
    request_model: str
    server: RunningServer | None = None
    """The server this session started (and stops on exit); None for one it connected to."""


@dataclass
class Session:
    """A model behind an endpoint, its profile, the agent on it, and the trace runs go to."""

    endpoint: Endpoint
    profile: ModelProfile
    agent: Agent[ToolDeps, str]
    target: RunTarget
    model_dir: Path | None
    """The local model folder (its tokenizer counts tokens); None for a remote model name."""
    sandbox: Sandbox
    """Where `run_command` runs; kind "none" refuses every command."""
    trace: TraceWriter | None = None

    async def ask(
        self,
        question: str,
        repo: Path | str,
        *,
        budgets: Budgets | None = None,
        hooks: RunHooks | None = None,
        trace_repo: str | None = None,
        stop_on_signal: bool = False,
    ) -> RunOutcome:
        """Run one question on `repo` to an explicit end; the trace line is written whatever
        ends it. `trace_repo` names the repository in the trace when `repo` is a throwaway copy.

        With `stop_on_signal` (a command-line run, in the main thread), SIGINT/SIGTERM kill the
        run's commands, end it `interrupted` and raise `Interrupted` once its line is written.
        """
        deps = ToolDeps.for_repo(repo, sandbox=self.sandbox)
        run = run_agent(
            self.agent,
            question,
            deps,
            self.target,
            budgets=budgets,
            trace=self.trace,
            hooks=hooks,
            trace_repo=trace_repo,
        )
        if not stop_on_signal:
            return await run

        def stopped(reason: str) -> None:
            deps.stop_reason = reason

        with (
            anyio.CancelScope() as scope,
            stop_on_signals(deps.commands, scope.cancel, stopped) as signalled,
        ):
            return await run
        assert signalled.signum is not None  # only a signal cancels the scope
        raise Interrupted(signalled.signum)


def local_model_dir(model: str | Path | None) -> Path | None:
    """The local mlx-lm folder `model` names (None: the embedded model), else None."""
    if model is None:
        from punie.mlx.embedded import embedded_model_dir

        return embedded_model_dir()
    path = Path(model).expanduser()
    return path.resolve() if path.is_dir() else None


@contextmanager
def open_session(
    model: str | Path | None = None,
    *,
    base_url: str | None = None,
    adapter: Path | None = None,
    stop: Sequence[str] | None = None,
    settings: AgentSettings | None = None,
    trace_path: Path | None = None,
    use_trained_adapter: bool = False,
    unsandboxed: bool = False,
    blas_threads: int | None = None,
) -> Iterator[Session]:
    """Open a session on a model.

    Without `base_url`, `model` (a local mlx-lm folder or a Hugging Face id; None: the embedded
    model) is served on 127.0.0.1 with `adapter` (or, with `use_trained_adapter`, the newest
    adapter the loop trained for it) and stopped on exit. With `base_url`, `model` names the
    model: a local folder gives the profile and tokenizer (and `default_model` is sent, as an
    `mlx_lm server` of that folder expects), any other name is sent as is.

    Commands run in the platform's sandbox; with none they are refused unless `unsandboxed`
    (or `PUNIE_UNSANDBOXED=1`). `blas_threads` caps the BLAS workers of the server it starts.
    """
    sandbox = detect_sandbox(allow_unsandboxed=True if unsandboxed else None)
    folder = local_model_dir(model) if base_url is None or model is not None else None
    if base_url is not None and folder is None:
        # A server Punie started (or any mlx-lm server of a local folder) names its folder in
        # GET /models: the profile comes from there, no --stop needed.
        named = model is not None and str(model) != DEFAULT_REQUEST_MODEL
        asked = str(model) if named else None
        profile = resolve_served_profile(base_url, asked, stop_override=stop)
        folder = None if named else served_model_folder(base_url)
        name = str(model) if named else str(folder or DEFAULT_REQUEST_MODEL)
    else:
        name = str(folder) if folder is not None else str(model or DEFAULT_REQUEST_MODEL)
        profile = resolve_profile(name, model_dir=folder, stop_override=stop)
    trace = TraceWriter(trace_path) if trace_path is not None else None
    with _endpoint(base_url, model, folder, adapter, use_trained_adapter, blas_threads) as endpoint:
        agent = create_agent(
            profile, base_url=endpoint.base_url, model=endpoint.request_model, settings=settings
        )
        target = RunTarget(model=name, profile=profile, base_url=endpoint.base_url)
        yield Session(endpoint, profile, agent, target, folder, sandbox, trace)


@contextmanager
def _endpoint(
    base_url: str | None,
    model: str | Path | None,
    folder: Path | None,
    adapter: Path | None,
    use_trained_adapter: bool,
    blas_threads: int | None = None,
) -> Iterator[Endpoint]:
    if base_url is not None:
        if adapter is not None:
            raise ConfigError(
                f"an adapter cannot be applied to the model at {base_url}; serve it there with "
                "the adapter, or leave out --base-url so Punie serves it"
            )
        request = DEFAULT_REQUEST_MODEL if folder is not None or model is None else str(model)
        yield Endpoint(base_url, request)
        return
    from punie.mlx.server import serve_model

    if adapter is None and use_trained_adapter and folder is not None:
        from punie.mlx.adapters import latest_adapter

        adapter = latest_adapter(folder)
    served = folder if folder is not None else str(model)
    with serve_model(served, adapter=adapter, blas_threads=blas_threads) as server:
        yield Endpoint(server.base_url, server.request_model, server)


def run_question(
    question: str,
    repo: Path,
    *,
    base_url: str | None = None,
    model: str | None = None,
    stop: Sequence[str] | None = None,
    adapter: Path | None = None,
    settings: AgentSettings | None = None,
    budgets: Budgets | None = None,
    trace_path: Path | None = None,
    hooks: RunHooks | None = None,
    use_trained_adapter: bool = True,
    unsandboxed: bool = False,
) -> RunOutcome:
    """Answer one question about `repo` in a session of its own (what `punie run` does): by
    default the embedded model served with the newest adapter the loop trained for it.
    SIGINT/SIGTERM end the run `interrupted` and raise `Interrupted` once its line is written."""
    with open_session(
        model,
        base_url=base_url,
        adapter=adapter,
        stop=stop,
        settings=settings,
        trace_path=trace_path or default_trace_path(),
        use_trained_adapter=use_trained_adapter,
        unsandboxed=unsandboxed,
    ) as session:
        return anyio.run(_ask, session, question, repo, budgets, hooks)


async def _ask(
    session: Session, question: str, repo: Path, budgets: Budgets | None, hooks: RunHooks | None
) -> RunOutcome:
    return await session.ask(question, repo, budgets=budgets, hooks=hooks, stop_on_signal=True)
