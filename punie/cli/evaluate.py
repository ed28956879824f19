"""`punie eval`, `punie demo` and `punie experiment`: measure the loop and run it whole."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markdown import Markdown

from punie.cli import app
from punie.cli.inputs import input_file, output_folder
from punie.errors import ConfigError

console = Console()


@app.command("eval")
def eval_command(
    tasks: list[Path] | None = typer.Option(
        None, "--tasks", help="Task JSONL file (repeatable); default: the suites in eval/."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model folder or Hugging Face id to serve; default: embedded model."
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="Evaluate a server already running here instead of serving."
    ),
    adapter: Path | None = typer.Option(None, "--adapter", help="LoRA adapter folder to serve."),
    label: str | None = typer.Option(
        None, "--label", help="Label of --model in the report (default: base, or tuned)."
    ),
    compare: list[str] | None = typer.Option(
        None, "--compare", help="Another target, LABEL=MODEL[:ADAPTER] or LABEL=URL (repeatable)."
    ),
    no_stop: bool = typer.Option(
        False, "--no-stop", help="Send no stop sequences and do not cut replies (to reproduce)."
    ),
    concurrency: int = typer.Option(2, "--concurrency", min=1, help="Tasks run at once."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1, help="Tokens per model reply."),
    out: Path = typer.Option(Path("runs/eval"), "--out", help="Folder for the report files."),
    forgetting: Path | None = typer.Option(
        None,
        "--forgetting",
        help="Held-out generic conversations (JSONL): also report loss and direct answers.",
    ),
    forgetting_limit: int = typer.Option(
        32, "--forgetting-limit", min=1, help="Conversations used by --forgetting."
    ),
) -> None:
    """Run an eval suite through the real agent and report per category, targets side by side.

    Writes report.md, report.json, report.png, results.jsonl and <label>/traces.jsonl to --out.
    """
    from punie.evaluation import EvalTarget, evaluate, load_suite
    from punie.evaluation.evaluate import parse_target
    from punie.evaluation.report import markdown_table
    from punie.evaluation.suite import shipped_suites

    files = list(tasks or shipped_suites())
    if not files:
        raise ConfigError("no task files: pass --tasks FILE (JSONL of tasks)")
    for path in tasks or []:
        input_file(path, "--tasks")
    if forgetting is not None:
        input_file(forgetting, "--forgetting")
    output_folder(out, "--out")
    suite = load_suite(files)
    main_label = label or ("tuned" if adapter else "base")
    targets = [EvalTarget(main_label, model=model, adapter=adapter, base_url=base_url)]
    targets += [parse_target(spec) for spec in compare or []]
    console.print(
        f"{len(suite)} tasks × {len(targets)} targets "
        f"({', '.join(t.label for t in targets)}), concurrency {concurrency}"
        + (", no stop sequences" if no_stop else ""),
        highlight=False,
    )
    report = evaluate(
        suite,
        targets,
        out_dir=out,
        concurrency=concurrency,
        no_stop=no_stop,
        max_tokens=max_tokens,
    )
    # The per-category table is too wide for a terminal; it is in the report file.
    console.print(Markdown(markdown_table(report).split("## Per category")[0]))
    if forgetting is not None:
        from punie.evaluation.forgetting import forgetting_check, forgetting_table

        result = forgetting_check(
            forgetting, targets, out_dir=out, limit=forgetting_limit, max_tokens=max_tokens
        )
        console.print(Markdown(forgetting_table(result)))
    console.print(
        f"report {report.markdown_path}\nchart {report.chart_path}\nresults {report.results_path}",
        highlight=False,
    )


@app.command("demo")
def demo_command(
    workdir: Path | None = typer.Option(None, "--workdir", help="Where the demo builds."),
    iters: int | None = typer.Option(None, "--iters", help="LoRA iterations."),
    train_package: str | None = typer.Option(None, "--train-package"),
    eval_package: str | None = typer.Option(None, "--eval-package"),
    eval_tasks: int | None = typer.Option(None, "--eval-tasks", help="Held-out generated tasks."),
    fixture_suite: bool = typer.Option(True, "--fixture-suite/--no-fixture-suite"),
    data_only: bool = typer.Option(
        False, "--data-only", help="Stop after the data stages (model, tasks, mixed splits)."
    ),
) -> None:
    """The whole loop offline: data, training, base-vs-tuned evaluation, verified harvest."""
    from dataclasses import replace

    from punie.loop.demo import DemoConfig, run_demo

    config = DemoConfig()
    overrides = {
        "workdir": workdir,
        "iters": iters,
        "train_package": train_package,
        "eval_package": eval_package,
        "eval_tasks": eval_tasks,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    config = replace(config, with_fixture_suite=fixture_suite)
    if data_only:
        from punie.loop.demo import prepare_data

        _, _, data = prepare_data(config, console)
        console.print(f"mixed splits: {data['mixed_dir']}")
        console.print(f"held-out tasks: {data['eval_tasks']}")
        return
    result = run_demo(config, console)
    console.rule("[bold]base vs tuned")
    console.print(result.report_markdown.read_text(), markup=False, highlight=False)
    console.print(f"report: {result.report_markdown}")
    if result.report_chart:
        console.print(f"chart:  {result.report_chart}")
    console.print(f"adapter (now the default of `punie run`): {result.adapter}")
    console.print(f"verified traces for the next round: {result.harvested}")
    reused = f", reused: {', '.join(result.reused)}" if result.reused else ""
    console.print(f"done in {result.seconds / 60:.1f} min{reused}")


experiment_app = typer.Typer(help="Experiments that measure the loop.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("recipes")
def experiment_recipes_command(
    workdir: Path | None = typer.Option(None, "--workdir", help="Shared with `punie demo`."),
    iters: int | None = typer.Option(None, "--iters", help="LoRA iterations per recipe."),
) -> None:
    """Earlier recipe vs Punie's, each with and without stop sequences: the 2x2 table."""
    from dataclasses import replace

    from punie.loop.demo import DemoConfig
    from punie.loop.experiment import run_recipes_experiment

    config = DemoConfig()
    if workdir is not None:
        config = replace(config, workdir=workdir)
    if iters is not None:
        config = replace(config, iters=iters)
    result = run_recipes_experiment(config, console)
    console.print(result.markdown.read_text(), markup=False, highlight=False)
    console.print(f"table: {result.markdown}\nchart: {result.chart}\njson:  {result.json}")
