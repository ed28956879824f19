"""The loop's rounds: fresh training-repository tasks, the held-out guard, the loop report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from punie.data.generate.splits import SplitPlan
from punie.data.generate.tasks import generate_to_files
from punie.errors import ConfigError
from punie.evaluation.metrics import RunScore
from punie.evaluation.report import TargetInfo, build_report
from punie.loop.demo import DemoConfig
from punie.loop.rounds import RoundResult, fresh_tasks, known_questions, run_rounds
from punie.loop.stages import Stages, content_digest, package_source
from punie.loop.summary import write_loop_report
from punie.records.task import TaskSpec, read_tasks
from punie.records.trace import RunStatus

PLAN = SplitPlan(train=("click",), valid=(), held_out=("platformdirs",))


@pytest.fixture(scope="module")
def training_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training split's tasks of `click`, as the demo generates them (seed 0)."""
    folder = tmp_path_factory.mktemp("train")
    generate_to_files(
        package_source("click"),
        folder / "conversations.jsonl",
        folder / "tasks.jsonl",
        repo_name="click",
        limit=60,
        seed=0,
        snapshot_dir=folder / "repos",
    )
    return folder / "tasks.jsonl"


def test_fresh_tasks_come_from_training_repositories_and_are_new(
    training_tasks: Path, tmp_path: Path
) -> None:
    config = DemoConfig(workdir=tmp_path, split=PLAN, harvest_tasks=12)
    stages = Stages(tmp_path, console=Console(quiet=True))
    first = fresh_tasks(stages, config, 1, [str(training_tasks)])
    tasks = list(read_tasks(Path(first["folder"]) / "tasks.jsonl"))
    ids, questions = known_questions([str(training_tasks)])
    assert len(tasks) == first["chosen"] == 12
    assert {t.repo_name for t in tasks} == {"click"}
    assert not {t.id for t in tasks} & ids
    assert not {t.question.strip() for t in tasks} & questions
    # Another seed still draws some of the training questions: the exclusion is what keeps
    # them out.
    assert first["new"] < sum(first["generated"].values())
    assert len({t.category for t in tasks}) >= 4  # chosen across categories
    # The next round excludes this round's tasks too, and a rerun reuses the stage.
    later = [str(training_tasks), str(Path(first["folder"]) / "tasks.jsonl")]
    second = fresh_tasks(stages, config, 2, later)
    again = list(read_tasks(Path(second["folder"]) / "tasks.jsonl"))
    assert not {t.question for t in again} & {t.question for t in tasks}
    assert fresh_tasks(stages, config, 1, [str(training_tasks)]) == first
    assert "round-1/fresh-tasks" in stages.reused


def test_held_out_tasks_from_a_training_repository_are_refused(tmp_path: Path) -> None:
    config = DemoConfig(workdir=tmp_path, split=PLAN, rounds=2)
    task = TaskSpec(id="t", repo=str(tmp_path), repo_name="click", category="direct_answer",
                    question="?", kind="direct_answer")  # fmt: skip
    stages = Stages(tmp_path, console=Console(quiet=True))
    with pytest.raises(ConfigError, match="held-out tasks from training repositories: click"):
        run_rounds(stages, config, tmp_path, {"training_tasks": []}, [task])
    with pytest.raises(ConfigError, match="--rounds"):
        run_rounds(stages, DemoConfig(workdir=tmp_path, rounds=0), tmp_path, {}, [])


def test_content_digest_follows_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    absent = content_digest(path)
    path.write_text("a\n")
    first = content_digest(path)
    path.write_text("b\n")
    assert len({absent, first, content_digest(path)}) == 3


def _score(label: str, task: TaskSpec, passed: bool) -> RunScore:
    return RunScore(
        run_id=f"{label}-{task.id}", task_id=task.id, label=label, category=task.category,
        repo_name=task.repo_name, status=RunStatus.ANSWERED, passed=passed, terminated=True,
        tool_selection_ok=passed, arguments_ok=None, answer_ok=passed, first_tool=None,
        turns=1, tool_calls=0, output_tokens=10, tokens_after_end=0, duration_s=1.0,
    )  # fmt: skip


def _eval(labels: dict[str, list[bool]], tasks: list[TaskSpec], folder: Path) -> dict:
    targets = [TargetInfo(label=k, model="m", tokenizer="t", traces=str(folder)) for k in labels]
    scores = [
        _score(label, task, ok)
        for label, flags in labels.items()
        for task, ok in zip(tasks, flags, strict=True)
    ]
    return build_report(targets, scores).model_dump(mode="json")


def test_the_loop_report_puts_base_and_rounds_side_by_side(tmp_path: Path) -> None:
    places = [("anyio", "direct_answer"), ("httpx", "cannot_answer"), ("anyio", "ask_back"),
              ("bookshelf", "direct_answer")]  # fmt: skip
    tasks = [
        TaskSpec(
            id=f"t{i}",
            repo=str(tmp_path),
            repo_name=repo,
            category=category,
            question=f"q{i}",
            kind=category,
        )
        for i, (repo, category) in enumerate(places)
    ]
    card = {"examples": {"train": 40}, "counts": {"train": {"generated": 28, "glaive": 12}}}
    rounds = [
        RoundResult(1, tmp_path / "a1", "tuned",
                    _eval({"base": [False] * 4, "tuned": [True, False, False, False]}, tasks,
                          tmp_path), card,
                    harvest={"fresh": {"seed": 1000}, "tasks": 8, "passed": 3, "kept": 2,
                             "dropped": {"not_verified": 5, "duplicate": 1}, "file": "v.jsonl",
                             "report": "r.md"}),
        RoundResult(2, tmp_path / "a2", "round-2",
                    _eval({"round-2": [True, True, False, False]}, tasks, tmp_path),
                    {**card, "counts": {"train": {"generated": 26, "harvested": 2}}},
                    harvested_file=Path("v.jsonl")),
    ]  # fmt: skip
    stages = Stages(tmp_path, console=Console(quiet=True), seconds={"eval": 90.0})
    config = DemoConfig(workdir=tmp_path, rounds=2)
    report = write_loop_report(config, rounds, tasks, stages, seconds=150.0)

    payload = json.loads((tmp_path / "report.json").read_text())
    assert payload == report.payload
    assert payload["minutes"] == 2.5 and payload["rounds"] == 2
    assert payload["held_out_repositories"] == ["anyio", "bookshelf", "httpx"]
    assert set(payload["labels"]) == {"base", "round-1", "round-2", "tuned"}
    assert payload["labels"]["tuned"] == payload["labels"]["round-2"]
    overall = payload["labels"]["round-2"]["overall"]
    assert overall["pass_rate"] == 0.5 and overall["runs"] == 4
    interval = overall["rates"]["pass_rate"]
    assert (interval["n"], interval["successes"]) == (4, 2)
    assert 0 < interval["low"] < 0.5 < interval["high"] < 1
    direct = payload["labels"]["round-1"]["direct_answer"]
    assert (direct["runs"], direct["pass_rate"]) == (2, 0.5)
    assert payload["labels"]["base"]["overall"]["pass_rate"] == 0.0
    details = payload["round_details"]
    assert details[0]["harvest_for_next_round"]["kept"] == 2
    assert details[1]["trained_on"]["sources"]["harvested"] == 2
    markdown = report.markdown.read_text()
    assert "| metric | base | round-1 | round-2 |" in markdown
    assert "2 harvested from the previous round" in markdown
    assert report.chart.stat().st_size > 1000


@pytest.mark.slow
def test_two_rounds_of_the_real_loop_feed_back_only_training_repository_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded model, real servers, two real (tiny) trainings; a rerun reuses it all."""
    from punie.loop import run
    from punie.loop.run import run_demo
    from punie.mlx.adapters import latest_adapter, remember_adapter

    registry = tmp_path / "registry"  # not the user's default adapter of `punie run`
    monkeypatch.setattr(
        run, "remember_adapter", lambda a, m: remember_adapter(a, m, data_dir=registry)
    )

    config = DemoConfig(
        workdir=tmp_path, split=SplitPlan(train=("click",), valid=("structlog",),
                                          held_out=("platformdirs",),
                                          held_out_tasks_per_package=12),
        train_tasks=12, valid_tasks=4, eval_tasks=3, harvest_tasks=4, rounds=2, iters=2,
        with_fixture_suite=False, eval_max_tokens=64, eval_concurrency=2,
    )  # fmt: skip
    result = run_demo(config, Console(quiet=True))
    payload = json.loads((tmp_path / "report.json").read_text())
    assert result.report_json == tmp_path / "report.json"
    assert payload["held_out_repositories"] == ["platformdirs"]
    assert payload["rounds"] == 2 and payload["tasks"] == 3
    assert {"base", "tuned", "round-1", "round-2"} <= set(payload["labels"])
    for label in ("base", "round-1", "round-2"):
        assert payload["labels"][label]["overall"]["runs"] == 3
    harvest = payload["round_details"][0]["harvest_for_next_round"]
    assert harvest["fresh_tasks"] == 4 and harvest["kept"] <= harvest["passed"] <= 4
    fresh = list(read_tasks(tmp_path / "round-1" / "fresh-tasks" / "tasks.jsonl"))
    assert {t.repo_name for t in fresh} == {"click"}
    trained = payload["round_details"][1]["trained_on"]["sources"]
    assert trained.get("harvested", 0) == harvest["kept"]
    assert result.harvested == [tmp_path / "round-1" / "harvest" / "verified.jsonl"]
    stamp = json.loads((tmp_path / "round-2" / "train" / ".stage.json").read_text())
    assert stamp["inputs"]["resume_adapter_file"].startswith(str(tmp_path / "train-punie"))
    assert result.adapter.is_relative_to(tmp_path / "round-2" / "train")
    from punie.mlx.embedded import embedded_model_dir

    assert latest_adapter(embedded_model_dir(), data_dir=registry) == result.adapter.resolve()
    assert (tmp_path / "report.png").stat().st_size > 1000
    again = run_demo(config, Console(quiet=True))
    assert "round-2/eval" in again.reused and "round-1/harvest-run" in again.reused


def test_the_cli_takes_rounds_on_demo_and_loop() -> None:
    import subprocess
    import sys

    for command in ("demo", "loop"):
        done = subprocess.run(
            [sys.executable, "-m", "punie", command, "--help"], capture_output=True, text=True
        )
        assert (
            done.returncode == 0 and "--rounds" in done.stdout and "--harvest-tasks" in done.stdout
        )
    refused = subprocess.run(
        [sys.executable, "-m", "punie", "loop", "--rounds", "0"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "--rounds" in refused.stderr


def test_full_is_the_longer_recipe_in_its_own_folder_and_flags_still_win() -> None:
    from punie.cli.evaluate import _loop_config
    from punie.loop.demo import DemoConfig

    short = _loop_config(None, None, None, None, None, True, 1, None)
    full = _loop_config(None, None, None, None, None, True, 2, None, full=True)
    assert short == DemoConfig()
    assert full.eval_tasks is None and full.iters > short.iters
    assert full.train_tasks > short.train_tasks and full.rounds == 2
    assert full.workdir != short.workdir
    assert _loop_config(None, 50, None, None, 60, True, 1, None, full=True).iters == 50
