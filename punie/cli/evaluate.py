"""`punie eval`, `punie demo` and `punie experiment`: measure the loop and run it whole."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markdown import Markdown

from punie.cli import app
from punie.cli.inputs import input_file, output_folder
from punie.errors import ConfigError

if TYPE_CHECKING:
    from punie.loop.demo import DemoConfig

console = Console()


_PENALTY = typer.Option(
    None,
    "--frequency-penalty",
    min=0.0,
    max=2.0,
    help="OpenAI frequency_penalty on every eval request (demo default: 0.5; 0: off).",
)


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
    frequency_penalty: float | None = _PENALTY,
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
        frequency_penalty=frequency_penalty,
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


def _loop_config(
    workdir: Path | None,
    iters: int | None,
    train_package: str | None,
    eval_package: str | None,
    eval_tasks: int | None,
    fixture_suite: bool,
    rounds: int,
    harvest_tasks: int | None,
    full: bool = False,
    recipe: dict[str, object] | None = None,
) -> DemoConfig:
    from dataclasses import replace

    from punie.loop.demo import DemoConfig, full_config

    overrides = {
        "workdir": workdir,
        "iters": iters,
        "train_package": train_package,
        "eval_package": eval_package,
        "eval_tasks": eval_tasks,
        "harvest_tasks": harvest_tasks,
        **(recipe or {}),
    }
    base = full_config() if full else DemoConfig()
    config = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    from punie.data.mix import check_balance
    from punie.loop.demo import check_recipe

    # Bad recipe flags are named before any stage runs.
    check_balance(config.balance)
    check_recipe(config)
    return replace(config, with_fixture_suite=fixture_suite, rounds=rounds)


def _run_loop(config: DemoConfig, data_only: bool) -> None:
    from punie.loop.run import run_demo

    if data_only:
        from punie.loop.demo import prepare_data

        _, _, data = prepare_data(config, console)
        console.print(f"mixed splits: {data['mixed_dir']}")
        console.print(f"held-out tasks: {data['eval_tasks']}")
        return
    result = run_demo(config, console)
    title = "base vs tuned" if config.rounds == 1 else "base and every round, side by side"
    console.rule(f"[bold]{title}")
    # The per-category table is too wide for a terminal; it is in the report file.
    text = result.report_markdown.read_text()
    console.print(text.split("## Per category")[0], markup=False, highlight=False)
    console.print(f"report: {result.report_markdown}")
    console.print(f"json:   {result.report_json}")
    if result.report_chart:
        console.print(f"chart:  {result.report_chart}")
    console.print(f"adapter (now the default of `punie run`): {result.adapter}")
    for path in result.harvested:
        console.print(f"verified traces fed back: {path}")
    if config.rounds == 1:
        console.print("one round: `--rounds 2` goes round the loop (harvest, retrain, re-evaluate)")
    reused = f", reused: {', '.join(result.reused)}" if result.reused else ""
    console.print(f"done in {result.seconds / 60:.1f} min{reused}")


_WORKDIR = typer.Option(None, "--workdir", help="Where the loop builds (stages are cached).")
_ITERS = typer.Option(None, "--iters", help="LoRA iterations per round.")
_EVAL_TASKS = typer.Option(None, "--eval-tasks", help="Held-out generated tasks evaluated.")
_HARVEST_TASKS = typer.Option(
    None, "--harvest-tasks", help="Fresh training-repository tasks answered per round (32)."
)
_FIXTURE = typer.Option(True, "--fixture-suite/--no-fixture-suite")
_TRAIN_PACKAGE = typer.Option(None, "--train-package")
_EVAL_PACKAGE = typer.Option(None, "--eval-package")
_FULL = typer.Option(
    False,
    "--full",
    help="The longer recipe: 440 training tasks, 300 steps, all 180 held-out tasks (~70 min).",
)
_BALANCE = typer.Option(
    None, "--balance", help="How the mix keeps 70/30: over (repeat public rows) or down."
)
_LR = typer.Option(None, "--learning-rate", help="Peak learning rate (2e-4).")
_LR_SCHEDULE = typer.Option(None, "--lr-schedule", help="constant or cosine (with warm-up).")
_FINE_TUNE = typer.Option(
    None, "--fine-tune-type", help="lora (default), dora, or full (the top layers' weights)."
)
_ANSWER_WEIGHT = typer.Option(
    None, "--answer-weight", help="Loss weight of answers from tool results (default 1)."
)
_EXTENDED = typer.Option(
    False,
    "--extended-kinds",
    help="Also train on the extended task kinds (constants, class methods, more recoveries).",
)
_TRAIN_SEED = typer.Option(
    None, "--train-seed", help="Seed of the LoRA start and batch order (default: the data seed 0)."
)
_DATA_ONLY = typer.Option(
    False, "--data-only", help="Stop after the data stages (model, tasks, mixed splits)."
)


@app.command("demo")
def demo_command(
    workdir: Path | None = _WORKDIR,
    iters: int | None = _ITERS,
    train_package: str | None = _TRAIN_PACKAGE,
    eval_package: str | None = _EVAL_PACKAGE,
    eval_tasks: int | None = _EVAL_TASKS,
    fixture_suite: bool = _FIXTURE,
    rounds: int = typer.Option(
        1, "--rounds", min=1, help="Rounds of the loop; 2 or more harvest, retrain, re-evaluate."
    ),
    harvest_tasks: int | None = _HARVEST_TASKS,
    full: bool = _FULL,
    balance: str | None = _BALANCE,
    learning_rate: float | None = _LR,
    lr_schedule: str | None = _LR_SCHEDULE,
    fine_tune_type: str | None = _FINE_TUNE,
    answer_weight: float | None = _ANSWER_WEIGHT,
    frequency_penalty: float | None = _PENALTY,
    extended_kinds: bool = _EXTENDED,
    train_seed: int | None = _TRAIN_SEED,
    data_only: bool = _DATA_ONLY,
) -> None:
    """The whole loop offline: data, training, base-vs-tuned evaluation (`--rounds N`: N rounds).

    Writes report.json, report.md and report.png at the top of the work folder."""
    recipe = {
        "balance": balance,
        "learning_rate": learning_rate,
        "lr_schedule": lr_schedule,
        "fine_tune_type": fine_tune_type,
        "answer_weight": answer_weight,
        "eval_frequency_penalty": frequency_penalty,
        "extended_kinds": extended_kinds or None,
        "train_seed": train_seed,
    }
    config = _loop_config(
        workdir, iters, train_package, eval_package, eval_tasks, fixture_suite, rounds,
        harvest_tasks, full, recipe,
    )  # fmt: skip
    _run_loop(config, data_only)


@app.command("loop")
def loop_command(
    rounds: int = typer.Option(2, "--rounds", min=1, help="Rounds of the loop."),
    workdir: Path | None = _WORKDIR,
    iters: int | None = _ITERS,
    train_package: str | None = _TRAIN_PACKAGE,
    eval_package: str | None = _EVAL_PACKAGE,
    eval_tasks: int | None = _EVAL_TASKS,
    fixture_suite: bool = _FIXTURE,
    harvest_tasks: int | None = _HARVEST_TASKS,
    full: bool = _FULL,
) -> None:
    """`punie demo --rounds N` (default 2): each round answers fresh training-repository tasks,
    feeds back the runs that passed, retrains and evaluates on the same held-out set."""
    config = _loop_config(
        workdir, iters, train_package, eval_package, eval_tasks, fixture_suite, rounds,
        harvest_tasks, full,
    )  # fmt: skip
    _run_loop(config, data_only=False)


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


@experiment_app.command("search")
def experiment_search_command(
    workdir: Path | None = typer.Option(None, "--workdir", help="Shared with `punie demo`."),
    only: list[str] = typer.Option(
        [], "--only", help="Run only these variants (by name; repeatable)."
    ),
    probe: bool = typer.Option(
        True, "--probe/--no-probe", help="Also probe every held-out turn (slow for the base)."
    ),
) -> None:
    """Recipe search: train each variant on the demo's data, score base and every variant with
    the agent eval and the first-turn probe; a table and a chart of rates by training minutes."""
    from dataclasses import replace

    from punie.loop.demo import DemoConfig
    from punie.loop.search import DEFAULT_VARIANTS, run_search

    config = DemoConfig() if workdir is None else replace(DemoConfig(), workdir=workdir)
    names = {v.name for v in DEFAULT_VARIANTS}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise typer.BadParameter(
            f"unknown variant {unknown[0]!r}; the variants are: {', '.join(sorted(names))}",
            param_hint="--only",
        )
    variants = tuple(v for v in DEFAULT_VARIANTS if not only or v.name in only)
    result = run_search(config, variants, console, probe_turns_too=probe)
    console.print(result.markdown.read_text(), markup=False, highlight=False)
    console.print(f"table: {result.markdown}\njson:  {result.json}")
    if result.chart:
        console.print(f"chart: {result.chart}")
