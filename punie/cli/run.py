"""`punie run`: one question, one repository, one traced agent run."""

from __future__ import annotations

import signal
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel

from punie.cli import app
from punie.errors import ConfigError
from punie.records.trace import ModelExchange, RunStatus, ToolCallRecord
from punie.runtime.agent import AgentSettings
from punie.runtime.guards import Budgets
from punie.runtime.interrupts import Interrupted
from punie.runtime.runner import RunHooks
from punie.runtime.session import default_trace_path, run_question

console = Console()


def _show_tool_call(record: ToolCallRecord) -> None:
    args = ", ".join(f"{k}={v!r}" for k, v in record.arguments.items())
    head = f"[bold cyan]{record.name}[/]({args})"
    body = record.error if record.error is not None else (record.result or "")
    lines = body.splitlines()
    shown = "\n".join(lines[:12]) + (f"\n… {len(lines) - 12} more lines" if len(lines) > 12 else "")
    style = "red" if record.error is not None else "dim"
    console.print(head)
    console.print(shown, style=style, markup=False, highlight=False)


def _show_response(exchange: ModelExchange) -> None:
    if exchange.tool_call_ids and exchange.text.strip():
        console.print(exchange.text.strip(), style="italic", markup=False, highlight=False)


def _parse_logit_bias(items: list[str]) -> dict[str, int] | None:
    bias: dict[str, int] = {}
    for item in items:
        token, _, value = item.partition("=")
        if not token.strip().isdigit() or not value.strip().lstrip("-").isdigit():
            raise ConfigError(f"--logit-bias {item!r}: expected TOKEN_ID=BIAS, such as 2=-100")
        bias[token.strip()] = int(value)
    return bias or None


def _check_run_inputs(
    question: str,
    repo: Path,
    trace: Path | None,
    max_tokens: int,
    max_requests: int,
    max_seconds: float,
) -> None:
    """One line naming the first input that cannot work, before anything starts."""
    if not question.strip() or "\x00" in question:
        raise ConfigError("the question is empty (or holds a NUL byte): ask something")
    if not repo.exists():
        raise ConfigError(f"--repo {str(repo)!r} does not exist: pass a repository folder")
    if not repo.is_dir():
        raise ConfigError(f"--repo {str(repo)!r} is not a folder: pass a repository folder")
    if trace is not None and trace.exists() and not trace.is_file():
        raise ConfigError(f"--trace {str(trace)!r} is not a regular file: pass a JSONL file path")
    for flag, value in (("--max-tokens", max_tokens), ("--max-requests", max_requests)):
        if value < 1:
            raise ConfigError(f"{flag} {value}: must be 1 or more")
    if not max_seconds > 0:
        raise ConfigError(f"--max-seconds {max_seconds}: must be more than 0")


@app.command("run")
def run_command(
    question: str = typer.Argument(..., help="What to ask about the repository."),
    repo: Path = typer.Option(Path("."), "--repo", help="The repository the tools work in."),
    base_url: str | None = typer.Option(
        None, "--base-url", help="An OpenAI-compatible server; none: serve the embedded model."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Model name sent to --base-url (default: default_model; the profile comes from the "
        "folder the server lists in GET /models), or a local model folder to serve.",
    ),
    stop: list[str] | None = typer.Option(
        None, "--stop", help="Stop sequence (repeatable); overrides the model's profile."
    ),
    adapter: Path | None = typer.Option(None, "--adapter", help="A LoRA adapter folder to serve."),
    base_model: bool = typer.Option(
        False, "--base", help="Serve the embedded model without the newest trained adapter."
    ),
    max_tokens: int = typer.Option(512, "--max-tokens", help="Tokens per model reply."),
    max_requests: int = typer.Option(12, "--max-requests", help="Model requests per run."),
    max_seconds: float = typer.Option(300.0, "--max-seconds", help="Wall-clock budget."),
    no_stop: bool = typer.Option(
        False, "--no-stop", help="Send no stop sequences and do not cut replies (to reproduce)."
    ),
    trace: Path | None = typer.Option(None, "--trace", help="Traces JSONL file to append to."),
    logit_bias: list[str] | None = typer.Option(
        None, "--logit-bias", help="TOKEN_ID=BIAS sent with every request (repeatable)."
    ),
    unsandboxed: bool = typer.Option(
        False,
        "--unsandboxed",
        help="Where no sandbox works, run commands on the host anyway (PUNIE_UNSANDBOXED=1).",
    ),
    frequency_penalty: float | None = typer.Option(
        None,
        "--frequency-penalty",
        min=0.0,
        max=2.0,
        help="OpenAI frequency_penalty sent with every request (keeps small models out of loops).",
    ),
) -> None:
    """Ask a question about a repository; prints tool calls as they happen, then the answer.

    Commands run in a sandbox (bubblewrap, or sandbox-exec on macOS); without one they are
    refused unless --unsandboxed. Exit code 0 only when the run ended `answered`; 130 (143)
    after Ctrl-C (SIGTERM), with the trace line written.
    """
    _check_run_inputs(question, repo, trace, max_tokens, max_requests, max_seconds)
    settings = AgentSettings(
        max_tokens=max_tokens,
        send_stop=not no_stop,
        cut_replies=not no_stop,
        logit_bias=_parse_logit_bias(logit_bias or []),
        frequency_penalty=frequency_penalty,
    )
    budgets = Budgets(max_requests=max_requests, max_seconds=max_seconds)
    hooks = RunHooks(on_response=_show_response, on_tool_call=_show_tool_call)
    trace = trace or default_trace_path()
    try:
        outcome = run_question(
            question,
            repo,
            base_url=base_url,
            model=model,
            stop=stop or None,
            adapter=adapter,
            settings=settings,
            budgets=budgets,
            trace_path=trace,
            hooks=hooks,
            use_trained_adapter=not base_model,
            unsandboxed=unsandboxed,
        )
    except KeyboardInterrupt as exc:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second signal now is quiet
            signal.signal(signum, signal.SIG_IGN)
        code = exc.exit_code if isinstance(exc, Interrupted) else 130
        console.print("[yellow]interrupted[/]: the run's trace line was written")
        raise typer.Exit(code) from None
    if outcome.status is RunStatus.ANSWERED:
        console.print(Panel(outcome.output or "", title="answer", expand=False))
    else:
        console.print(f"[red]{outcome.status.value}[/]: {outcome.reason}", highlight=False)
    console.print(
        f"status [bold]{outcome.status.value}[/] · {len(outcome.tool_calls)} tool calls · "
        f"{outcome.duration_s:.1f} s · trace {trace} (run {outcome.run_id})",
        highlight=False,
    )
    raise typer.Exit(0 if outcome.status is RunStatus.ANSWERED else 1)


@app.command("traces")
def traces_command(
    path: Path | None = typer.Argument(None, help="Traces file (default: the user's one)."),
    last: int = typer.Option(20, "--last", help="How many of the newest runs to list."),
) -> None:
    """List traced runs with their status and tool calls."""
    from rich.table import Table

    from punie.records.trace import read_traces

    path = path or default_trace_path()
    outcomes = list(read_traces(path))[-last:]
    table = Table(title=f"{path} ({len(outcomes)} runs shown)")
    for column in ("run", "status", "question", "tool calls", "answer"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        calls = ", ".join(c.name for c in o.tool_calls)
        table.add_row(o.run_id, o.status.value, o.question[:60], calls, (o.output or "")[:60])
    console.print(table)
