"""The loop going round: each round trains, is evaluated on the held-out set, and (before the
next round) harvests its own verified runs on fresh tasks from the *training* repositories.

Round 1 is the demo's: the adapter `train-punie` on the mixed data, evaluated base vs tuned
(stage `eval`). Before round r + 1, round r's adapter answers `harvest_tasks` fresh tasks
generated from the training packages with another seed (none whose id or question the
training or validation data already holds, none a previous round used), and the runs that
passed every check are harvested (`punie data harvest --verified`). Those conversations join
the code side of the next mix (70/30 kept: they replace generated rows, see
`punie.data.mix`); round r + 1 continues training from round r's adapter on that mix for
`iters` more steps and is evaluated on the same held-out tasks. Nothing the held-out
repositories produced is ever trained on. Every step is a cached stage, so a rerun reuses
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie.data.generate.splits import eval_subset, per_package
from punie.errors import ConfigError
from punie.loop.demo import (
    GENERATOR_CODE,
    DemoConfig,
    eval_inputs,
    mix_stage,
    split_plan,
    train_stage,
)
from punie.loop.stages import Stages, as_json, code_digest, content_digest, package_source
from punie.records.task import TaskSpec

FRESH_OVERSAMPLE = 3
"""Fresh tasks generated per task wanted, so enough are left once known questions are out."""
SEED_STRIDE = 1000
"""Round r generates its fresh tasks with seed `seed + r * SEED_STRIDE`."""


@dataclass
class RoundResult:
    """One round: its adapter, its held-out eval, and what it harvested for the next round."""

    number: int
    adapter: Path
    label: str
    """The adapter's label in `eval` (`tuned` in round 1, which also holds `base`)."""
    eval: dict[str, Any]
    """The `EvalReport` of the held-out evaluation, as JSON."""
    card: dict[str, Any]
    """The dataset card of the mix this round trained on."""
    harvest: dict[str, Any] | None = None
    """Before the next round: the fresh tasks' run and what the verified harvest kept."""
    harvested_file: Path | None = None
    """The verified conversations this round trained on (None in round 1)."""


def round_label(number: int) -> str:
    """The label of a round's adapter in its eval stage."""
    return "tuned" if number == 1 else f"round-{number}"


def known_questions(task_files: list[str]) -> tuple[set[str], set[str]]:
    """(ids, questions) of the tasks in `task_files` (missing files hold none)."""
    from punie.records.task import read_tasks

    ids: set[str] = set()
    questions: set[str] = set()
    for name in task_files:
        path = Path(name)
        if not path.is_file():
            continue
        for task in read_tasks(path):
            ids.add(task.id)
            questions.add(task.question.strip())
    return ids, questions


def fresh_tasks(
    stages: Stages, config: DemoConfig, number: int, known_files: list[str]
) -> dict[str, Any]:
    """Stage `round-<n>/fresh-tasks`: `harvest_tasks` new tasks from the training packages."""
    from punie.data.generate.tasks import generate_tasks
    from punie.records.task import write_tasks

    plan = split_plan(config)
    seed = config.seed + number * SEED_STRIDE
    wanted = per_package(config.harvest_tasks, plan.train)

    def build(folder: Path) -> dict[str, Any]:
        ids, questions = known_questions(known_files)
        pool: list[TaskSpec] = []
        generated: dict[str, int] = {}
        for package, count in wanted.items():
            if count <= 0:
                continue
            made, _ = generate_tasks(
                package_source(package),
                repo_name=package,
                limit=count * FRESH_OVERSAMPLE,
                seed=seed,
                snapshot_dir=folder / "repos",
                phrasing=plan.phrasing("train"),
            )
            generated[package] = len(made)
            pool += [
                g.task
                for g in made
                if g.task.id not in ids and g.task.question.strip() not in questions
            ]
        chosen = eval_subset(pool, config.harvest_tasks, seed)
        write_tasks(folder / "tasks.jsonl", chosen)
        return {"folder": str(folder), "seed": seed, "generated": generated,
                "new": len(pool), "chosen": len(chosen)}  # fmt: skip

    inputs = {
        "seed": seed,
        "wanted": wanted,
        "train": list(plan.train),
        "known": content_digest(*known_files),
        "code": code_digest(*GENERATOR_CODE),
    }
    return stages.run(f"round-{number}/fresh-tasks", inputs, build)


def harvest_round(
    stages: Stages,
    config: DemoConfig,
    number: int,
    adapter: Path,
    model_dir: Path,
    tasks_file: Path,
    known_files: list[str],
) -> dict[str, Any]:
    """Run round `number`'s adapter on its fresh tasks, then keep the runs that passed."""
    from punie.data.harvest import harvest_traces
    from punie.evaluation.evaluate import EvalTarget, evaluate
    from punie.records.task import read_tasks

    tasks = list(read_tasks(tasks_file))
    label = f"round-{number}"
    training = set(split_plan(config).train)
    strays = sorted({t.repo_name for t in tasks} - training)
    if strays:
        raise ConfigError(f"harvest tasks from {', '.join(strays)}: not training repositories")

    def run(folder: Path) -> dict[str, Any]:
        report = evaluate(
            tasks,
            [EvalTarget(label, model=str(model_dir), adapter=adapter)],
            out_dir=folder,
            concurrency=config.eval_concurrency,
            max_tokens=config.eval_max_tokens,
            frequency_penalty=config.eval_frequency_penalty,
        )
        return as_json(report)

    report = stages.run(f"round-{number}/harvest-run", eval_inputs(config, tasks, adapter), run)

    def harvest(folder: Path) -> dict[str, Any]:
        _, questions = known_questions(known_files)
        result = harvest_traces(
            Path(report["results_path"]).parent / label / "traces.jsonl",
            folder / "verified.jsonl",
            verified=Path(report["results_path"]),
            exclude_questions=questions,
        )
        return {**as_json(result), "file": str(folder / "verified.jsonl")}

    inputs = {
        "run": content_digest(report["results_path"]),
        "known": content_digest(*known_files),
        "code": code_digest("punie.data.harvest"),
    }
    harvested = stages.run(f"round-{number}/harvest", inputs, harvest)
    overall = report["metrics"][label]["overall"]
    return {
        "tasks": len(tasks),
        "passed": round(overall["pass_rate"] * overall["runs"]),
        "pass_rate": overall["pass_rate"],
        "kept": harvested["kept"],
        "dropped": harvested["dropped"],
        "file": harvested["file"],
        "report": report["markdown_path"],
    }


def evaluate_round(
    stages: Stages,
    config: DemoConfig,
    number: int,
    adapter: Path,
    model_dir: Path,
    tasks: list[TaskSpec],
) -> dict[str, Any]:
    """Round 1: base and tuned on the held-out tasks (stage `eval`); later rounds: the round's
    adapter alone on the same tasks (stage `round-<n>/eval`)."""
    from punie.evaluation.evaluate import EvalTarget, evaluate

    targets = [EvalTarget(round_label(number), model=str(model_dir), adapter=adapter)]
    if number == 1:
        targets.insert(0, EvalTarget("base", model=str(model_dir)))

    def run(folder: Path) -> dict[str, Any]:
        report = evaluate(
            tasks,
            targets,
            out_dir=folder,
            concurrency=config.eval_concurrency,
            max_tokens=config.eval_max_tokens,
            frequency_penalty=config.eval_frequency_penalty,
            together=True,  # base and tuned at once: ~1.2 min sooner on 2 cores
        )
        return as_json(report)

    name = "eval" if number == 1 else f"round-{number}/eval"
    return stages.run(name, eval_inputs(config, tasks, adapter), run)


def run_rounds(
    stages: Stages,
    config: DemoConfig,
    model_dir: Path,
    data: dict[str, Any],
    tasks: list[TaskSpec],
) -> list[RoundResult]:
    """Run `config.rounds` rounds of the loop (see the module docstring)."""
    if config.rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {config.rounds}")
    plan = split_plan(config)
    trained_on = {*plan.train, *plan.valid}
    leaked = sorted({t.repo_name for t in tasks} & trained_on)
    if leaked:
        raise ConfigError(f"held-out tasks from training repositories: {', '.join(leaked)}")
    known_files = list(data["training_tasks"])
    harvested_files: list[str] = []
    results: list[RoundResult] = []
    adapter: Path | None = None
    for number in range(1, config.rounds + 1):
        harvested_file: Path | None = None
        if number == 1:
            mixed_dir, card = data["mixed_dir"], data["card"]
            adapter = train_stage(stages, "train-punie", config, mixed_dir, model_dir, "punie")
        else:
            assert adapter is not None and results[-1].harvest is not None
            harvested_file = Path(results[-1].harvest["file"])
            harvested_files.append(str(harvested_file))
            code = [*data["code_files"], *harvested_files]
            mixed = mix_stage(
                stages,
                f"round-{number}/mixed",
                config,
                model_dir,
                code,
                data["generic_files"],
                {"files": content_digest(*code, *data["generic_files"])},
            )
            mixed_dir, card = mixed["folder"], mixed["card"]
            adapter = train_stage(
                stages,
                f"round-{number}/train",
                config,
                mixed_dir,
                model_dir,
                "punie",
                start_from=adapter,
            )
        report = evaluate_round(stages, config, number, adapter, model_dir, tasks)
        result = RoundResult(
            number=number,
            adapter=adapter,
            label=round_label(number),
            eval=report,
            card=card,
            harvested_file=harvested_file,
        )
        if number < config.rounds:
            fresh = fresh_tasks(stages, config, number, known_files)
            tasks_file = Path(fresh["folder"]) / "tasks.jsonl"
            result.harvest = {
                "fresh": fresh,
                **harvest_round(
                    stages, config, number, adapter, model_dir, tasks_file, known_files
                ),
            }
            known_files.append(str(tasks_file))
        results.append(result)
    return results
