"""`punie demo` (and `punie loop`): the whole loop, offline, on the embedded model.

Prepare the model, generate grounded code tasks from installed packages: training and
validation from some, the held-out eval set (with its own question wording) from others, as
`punie.data.generate.splits.DEFAULT_PLAN` decides; mix the training side 70/30 with the shipped
public rows, train with Punie's recipe, evaluate base and tuned side by side (on `eval_tasks` of
the held-out set). With `rounds` above 1 the loop goes round (`punie.loop.rounds`): the tuned
model answers fresh tasks from the *training* repositories, its verified runs join the next
round's data, and each round is evaluated on the same held-out set. `report.json`,
`report.md` and `report.png` at the top of the work folder put base and every round side by
side. A second run reuses every stage whose inputs did not change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from punie.data.generate.splits import DEFAULT_PLAN, SplitPlan, eval_subset, per_package
from punie.errors import ConfigError
from punie.loop.stages import Stages, as_json, code_digest, content_digest, package_source
from punie.progress import Console

GENERATOR_CODE = (
    "punie.data.generate",
    "punie.records",
    "punie.runtime.agent",
    "punie.runtime.tools",
)
RUNTIME_CODE = (
    "punie.evaluation",
    "punie.runtime.runner",
    "punie.runtime.agent",
    "punie.runtime.guards",
    "punie.runtime.recovery",
    "punie.records.profile",
    "punie.runtime.tools",
)


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo decides; `punie demo` flags override these."""

    workdir: Path = field(default_factory=lambda: platformdirs.user_data_path("punie") / "demo")
    split: SplitPlan = DEFAULT_PLAN
    """Which packages are train, valid and held out (and so which phrasing each uses)."""
    train_package: str | None = None
    """One package instead of the plan's train packages (`--train-package`)."""
    valid_package: str | None = None
    eval_package: str | None = None
    """One package instead of the plan's held-out packages (`--eval-package`)."""
    train_tasks: int = 220
    """Shared out over the train packages."""
    extended_kinds: bool = False
    """Also generate the extended kinds for training (`Kind.extended`; `--extended-kinds`)."""
    valid_tasks: int = 24
    eval_tasks: int | None = 16
    """How many of the full held-out set the demo evaluates (None: all of it)."""
    with_fixture_suite: bool = True
    rounds: int = 1
    """Rounds of the loop: 1 trains once; each further round harvests the previous round's
    verified runs on fresh training-repository tasks, retrains and evaluates again."""
    harvest_tasks: int = 32
    """Fresh training-repository tasks the model answers per round, to harvest from."""
    ratio: float = 0.7
    balance: str = "over"
    """How the mix reaches `ratio` (`punie data mix --balance`): `over` repeats the few public
    rows, so every generated training task is trained on."""
    iters: int = 80
    batch_size: int = 4
    num_layers: int = 8
    learning_rate: float = 2e-4
    lr_schedule: str = "constant"
    """`constant`, or `cosine`: a linear warm-up over the first 1/16 of the steps, then a cosine
    decay to 1/20 of `learning_rate` (the peak)."""
    lora_rank: int = 16
    fine_tune_type: str = "lora"
    """`lora`, `dora`, or `full`: every weight of the top `num_layers` layers trained."""
    answer_weight: float = 1.0
    """The loss weight of each answer from a tool result (every other assistant token: 1)."""
    max_seq_length: int = 1024
    eval_concurrency: int = 4
    eval_max_tokens: int = 160
    eval_frequency_penalty: float | None = 0.5
    """OpenAI's `frequency_penalty`, sent with every eval and harvest request, to base and
    tuned alike (None: not sent). On the demo's adapter over all 202 held-out tasks, paired:
    clean termination 89% -> 94% (15 runs gained, 5 lost), passed unchanged (0 either way)."""
    seed: int = 0
    train_seed: int | None = None
    """Seeds the LoRA initialisation and the order of training batches (None: `seed`); the
    data stays that of `seed`, so runs that differ only here measure run-to-run spread."""


def full_config() -> DemoConfig:
    """The longer named recipe (`punie demo --full`): twice the generated training tasks, the
    whole held-out set (180 tasks plus the fixture suite) and 300 LoRA steps, in its own work
    folder. With `balance: over` all 440 tasks reach training. Measured end to end on a 2-core
    AMD EPYC: 68.9 minutes (cache 11.3, 300 steps 27.1, base and tuned on 202 tasks 29.9)."""
    return DemoConfig(
        workdir=platformdirs.user_data_path("punie") / "demo-full",
        train_tasks=440,
        eval_tasks=None,
        iters=300,
    )


def split_plan(config: DemoConfig) -> SplitPlan:
    """The config's split plan, with the one-package overrides applied."""
    plan = config.split
    return replace(
        plan,
        train=(config.train_package,) if config.train_package else plan.train,
        valid=(config.valid_package,) if config.valid_package else plan.valid,
        held_out=(config.eval_package,) if config.eval_package else plan.held_out,
    )


def build_data(stages: Stages, config: DemoConfig, model_dir: Path) -> dict[str, Any]:
    """Generate code tasks, convert the shipped public rows, and mix them into splits."""
    from punie.data import convert_file
    from punie.data.convert.sources import shipped_public_rows
    from punie.data.generate.tasks import generate_to_files
    from punie.records.task import read_tasks, write_tasks

    plan = split_plan(config)

    def generate(package: str, limit: int, phrasing: str) -> dict[str, Any]:
        def build(folder: Path) -> dict[str, Any]:
            report = generate_to_files(
                package_source(package),
                folder / "conversations.jsonl",
                folder / "tasks.jsonl",
                repo_name=package,
                limit=limit,
                seed=config.seed,
                snapshot_dir=folder / "repos",
                phrasing=phrasing,
                extended_kinds=config.extended_kinds,
            )
            return {"report": as_json(report), "folder": str(folder)}

        inputs = {"limit": limit, "seed": config.seed, "phrasing": phrasing,
                  "code": code_digest(*GENERATOR_CODE)}  # fmt: skip
        if config.extended_kinds and phrasing != "held_out":
            inputs["extended_kinds"] = True
        return stages.run(f"tasks-{package}", inputs, build)

    def generate_split(split: Any, total: int) -> list[dict[str, Any]]:
        counts = per_package(total, plan.packages(split))
        return [generate(p, n, plan.phrasing(split)) for p, n in counts.items()]

    train = generate_split("train", config.train_tasks)
    valid = generate_split("valid", config.valid_tasks) if plan.valid else []
    held_out = [
        generate(p, plan.held_out_tasks_per_package, plan.phrasing("held_out"))
        for p in plan.held_out
    ]

    def choose_eval(folder: Path) -> dict[str, Any]:
        full = [t for h in held_out for t in read_tasks(Path(h["folder"]) / "tasks.jsonl")]
        chosen = eval_subset(full, config.eval_tasks, config.seed)
        write_tasks(folder / "tasks.jsonl", chosen)
        return {"folder": str(folder), "held_out_tasks": len(full), "chosen": len(chosen)}

    eval_set = stages.run(
        "eval-tasks", {"held_out": held_out, "count": config.eval_tasks, "seed": config.seed,
                       "code": code_digest("punie.data.generate.splits")}, choose_eval,
    )  # fmt: skip

    shipped = shipped_public_rows()

    def convert(folder: Path) -> dict[str, Any]:
        reports = {}
        for source in ("glaive", "when2call", "hermes"):  # xLAM is CC-BY-NC: not by default
            report = convert_file(source, shipped[source], folder / f"{source}.jsonl")
            reports[source] = as_json(report)
        return {"reports": reports, "folder": str(folder)}

    # By content, not path: a fresh clone elsewhere reuses what an identical one built.
    inputs: dict[str, Any] = {
        s: hashlib.sha256(shipped[s].read_bytes()).hexdigest()
        for s in ("glaive", "when2call", "hermes")
    }
    inputs["code"] = code_digest("punie.data", "punie.records.toolcall_text")
    generic = stages.run("generic", inputs, convert)

    code_files = [str(Path(g["folder"]) / "conversations.jsonl") for g in [*train, *valid]]
    generic_files = [
        str(Path(generic["folder"]) / f"{s}.jsonl") for s in ("glaive", "when2call", "hermes")
    ]
    mixed = mix_stage(
        stages,
        "mixed",
        config,
        model_dir,
        code_files,
        generic_files,
        {"train": train, "valid": valid, "generic": generic},
    )
    return {
        "mixed_dir": mixed["folder"],
        "eval_tasks": str(Path(eval_set["folder"]) / "tasks.jsonl"),
        "held_out_tasks": [str(Path(h["folder"]) / "tasks.jsonl") for h in held_out],
        "training_tasks": [str(Path(g["folder"]) / "tasks.jsonl") for g in [*train, *valid]],
        "code_files": code_files,
        "generic_files": generic_files,
        "card": mixed["card"],
    }


def mix_stage(
    stages: Stages,
    name: str,
    config: DemoConfig,
    model_dir: Path,
    code_files: list[str],
    generic_files: list[str],
    sources: dict[str, Any],
) -> dict[str, Any]:
    """Mix code-domain and generic conversation files 70/30 into one stage's splits.

    `sources` are the summaries of the stages that wrote the files (the stage's inputs).
    """
    from punie.data.mix import MixConfig, mix_datasets

    plan = split_plan(config)

    def mix(folder: Path) -> dict[str, Any]:
        card = mix_datasets(
            [Path(f) for f in code_files],
            [Path(f) for f in generic_files],
            folder,
            MixConfig(
                ratio=config.ratio,
                balance=config.balance,
                seed=config.seed,
                model_dir=model_dir,
                max_seq_length=config.max_seq_length,
                valid_repos=plan.valid,
                test_fraction=0.0,
            ),
        )
        return {"card": as_json(card), "folder": str(folder)}

    return stages.run(
        name,
        {**sources, "ratio": config.ratio, "balance": config.balance, "seed": config.seed,
         "max_seq_length": config.max_seq_length, "model": str(model_dir),
         "code": code_digest("punie.data.mix")},
        mix,
    )  # fmt: skip


def check_recipe(config: DemoConfig) -> None:
    """Name a bad recipe setting before any stage runs (ConfigError)."""
    from typing import get_args, get_type_hints

    from punie.mlx.train.config import TrainConfig

    kinds = get_args(get_type_hints(TrainConfig)["fine_tune_type"])  # the trainer's own choices
    if config.fine_tune_type not in kinds:
        named = ", ".join(f"'{k}'" for k in kinds[:-1]) + f" or '{kinds[-1]}'"
        raise ConfigError(f"--fine-tune-type must be {named}, got {config.fine_tune_type!r}")
    if not config.answer_weight > 0:
        raise ConfigError(f"--answer-weight must be above 0, got {config.answer_weight!r}")
    lr_schedule(config)


def lr_schedule(config: DemoConfig) -> dict[str, Any] | None:
    """The mlx-lm `lr_schedule` of the config (None: a constant learning rate)."""
    if config.lr_schedule == "constant":
        return None
    if config.lr_schedule != "cosine":
        raise ConfigError(
            f"--lr-schedule must be 'constant' or 'cosine', got {config.lr_schedule!r}"
        )
    peak = config.learning_rate
    warmup = max(config.iters // 16, 1)
    return {
        "name": "cosine_decay",
        "warmup": warmup,
        "warmup_init": peak / 10,
        "arguments": [peak, max(config.iters - warmup, 1), peak / 20],
    }


def train_values(
    config: DemoConfig,
    data_dir: str,
    model_dir: Path,
    recipe: str,
    *,
    start_from: Path | None = None,
) -> dict[str, Any]:
    """The trainer's settings (`TrainConfig` fields, less the adapter folder) for the config."""
    values: dict[str, Any] = {
        "data": data_dir,
        "model": str(model_dir),
        "recipe": recipe,
        "iters": config.iters,
        "batch_size": config.batch_size,
        "num_layers": config.num_layers,
        "learning_rate": config.learning_rate,
        "fine_tune_type": config.fine_tune_type,
        "answer_weight": config.answer_weight,
        "max_seq_length": config.max_seq_length,
        "seed": config.seed if config.train_seed is None else config.train_seed,
        "steps_per_report": 5,
        "steps_per_eval": max(config.iters // 2, 1),
        "save_every": max(config.iters // 4, 1),
        "val_batches": 4,
        "lora_parameters": {"rank": config.lora_rank, "scale": 20.0, "dropout": 0.0},
    }
    schedule = lr_schedule(config)
    if schedule is not None:
        values["lr_schedule"] = schedule
    if start_from is not None:
        values["resume_adapter_file"] = str(Path(start_from) / "adapters.safetensors")
    # Caching the frozen layers runs them once over every example; it pays only when the
    # steps see more examples than there are (a smoke run of 2 steps would wait for it).
    train_rows = (Path(data_dir) / "train.jsonl").read_text(encoding="utf-8").count("\n")
    values["cache_frozen_layers"] = config.iters * config.batch_size > train_rows
    return values


def train_stage(
    stages: Stages,
    name: str,
    config: DemoConfig,
    data_dir: str,
    model_dir: Path,
    recipe: str,
    *,
    start_from: Path | None = None,
) -> Path:
    """Train one LoRA adapter on the mixed data with the given recipe (continuing from the
    adapter folder `start_from` when given)."""
    from punie.mlx.train.config import make_config
    from punie.mlx.train.launch import train

    values = train_values(config, data_dir, model_dir, recipe, start_from=start_from)

    def build(folder: Path) -> dict[str, Any]:
        result = train(make_config({**values, "adapter_path": str(folder / "adapter")}))
        return {"result": as_json(result), "adapter": str(result.adapter_dir)}

    files = [Path(data_dir) / f"{split}.jsonl" for split in ("train", "valid")]
    if start_from is not None:
        files.append(Path(values["resume_adapter_file"]))
    inputs = {**values, "content": content_digest(*files), "code": code_digest("punie.mlx.train")}
    summary = stages.run(name, inputs, build)
    return Path(summary["adapter"])


def prepare_data(
    config: DemoConfig, console: Console | None = None
) -> tuple[Stages, Path, dict[str, Any]]:
    """The demo's first stages: the embedded model, the generated tasks and the mixed splits."""
    from punie.mlx.embedded import embedded_model_dir

    console = console or Console()
    stages = Stages(config.workdir, console=console)
    console.rule("[bold]prepare the embedded model")
    model_dir = embedded_model_dir()
    console.print(f"model: {model_dir}")
    return stages, model_dir, build_data(stages, config, model_dir)


def demo_tasks(config: DemoConfig, data: dict[str, Any]) -> list[Any]:
    """The held-out tasks every label is evaluated on (plus the fixture suite)."""
    from punie.evaluation.suite import load_suite, shipped_suites
    from punie.records.task import read_tasks

    tasks = list(read_tasks(Path(data["eval_tasks"])))
    if config.with_fixture_suite:
        tasks += load_suite(shipped_suites())
    return tasks


def eval_inputs(config: DemoConfig, tasks: list[Any], adapter: Path) -> dict[str, Any]:
    """What an evaluation of `adapter` on `tasks` depends on (a stage's inputs)."""
    return {"tasks": [t.id for t in tasks], "adapter": str(adapter),
            "weights": content_digest(Path(adapter) / "adapters.safetensors"),
            "max_tokens": config.eval_max_tokens,
            "frequency_penalty": config.eval_frequency_penalty,
            "code": code_digest(*RUNTIME_CODE)}  # fmt: skip
