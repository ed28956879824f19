"""The split plan holds: held-out packages and held-out wording never reach training or
validation, the held-out set is big enough and covers every category, and the demo's smaller
eval is drawn from it across categories and packages."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import get_args

import pytest
from rich.console import Console

from punie.data.generate.phrasing import HELD_OUT, TRAIN, template_pattern
from punie.data.generate.splits import DEFAULT_PLAN, SplitPlan, eval_subset, per_package
from punie.errors import ConfigError
from punie.loop.demo import DemoConfig, build_data
from punie.loop.stages import Stages, package_source
from punie.mlx.embedded import embedded_model_dir
from punie.records.task import TaskCategory, read_tasks


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo's own data stages (generation, conversion, mix), run for real."""
    workdir = tmp_path_factory.mktemp("demo")
    config = DemoConfig(workdir=workdir, train_tasks=120, valid_tasks=16, eval_tasks=24)
    stages = Stages(workdir, console=Console(quiet=True))
    return build_data(stages, config, embedded_model_dir())


def _rows(folder: Path, split: str) -> list[dict]:
    path = folder / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _questions(row: dict) -> list[str]:
    return [m["content"] for m in row["messages"] if m["role"] == "user"]


def test_the_default_plan_names_installed_pure_python_packages() -> None:
    plan = DEFAULT_PLAN
    assert len(plan.train) >= 3 and len(plan.held_out) >= 3 and plan.valid
    for package in (*plan.train, *plan.valid, *plan.held_out):
        folder = package_source(package)
        assert list(folder.rglob("*.py")), package
        assert not list(folder.rglob("*.so")), f"{package} is not pure Python"
    assert plan.phrasing("held_out") == "held_out"
    assert plan.phrasing("train") == plan.phrasing("valid") == "train"
    with pytest.raises(ConfigError, match="more than one split"):
        SplitPlan(train=("rich", "anyio"), held_out=("anyio",))


def test_no_held_out_repository_or_wording_reaches_a_training_split(demo_data: dict) -> None:
    mixed = Path(demo_data["mixed_dir"])
    card = json.loads((mixed / "card.json").read_text())
    seen = set(card["repositories"]["train"]) | set(card["repositories"]["valid"])
    assert set(DEFAULT_PLAN.train) <= set(card["repositories"]["train"])
    assert set(card["repositories"]["valid"]) == set(DEFAULT_PLAN.valid)
    assert not seen & set(DEFAULT_PLAN.held_out)
    held_out_patterns = HELD_OUT.patterns()
    checked = 0
    for split in ("train", "valid", "test"):
        for row in _rows(mixed, split):
            for question in _questions(row):
                assert not any(p.fullmatch(question) for p in held_out_patterns), question
                checked += 1
            for message in row["messages"]:
                for package in DEFAULT_PLAN.held_out:
                    assert f"site-packages/{package}" not in (message.get("content") or "")
    assert checked > 100


def test_the_held_out_set_is_big_worded_apart_and_covers_every_category(demo_data: dict) -> None:
    tasks = [t for path in demo_data["held_out_tasks"] for t in read_tasks(Path(path))]
    assert len(tasks) >= 150
    assert {t.repo_name for t in tasks} == set(DEFAULT_PLAN.held_out)
    by_category = Counter(t.category for t in tasks)
    assert set(by_category) == set(get_args(TaskCategory)), by_category
    for task in tasks:
        assert HELD_OUT.matches(task.question), task.question
        assert not TRAIN.matches(task.question), task.question
    print(f"\nheld-out tasks by category: {dict(sorted(by_category.items()))}")


def test_the_two_phrasing_sets_share_no_template() -> None:
    assert set(TRAIN.questions) == set(HELD_OUT.questions)
    train = {t for options in TRAIN.questions.values() for t in options}
    held_out = {t for options in HELD_OUT.questions.values() for t in options}
    assert not train & held_out
    assert not {q for q, _ in TRAIN.vague} & {q for q, _ in HELD_OUT.vague}
    # A template of one set never words a question of the other (filled with a placeholder).
    for mine, theirs in ((train, HELD_OUT), (held_out, TRAIN)):
        for template in mine:
            filled = template.format_map(_Anything())
            assert template_pattern(template).fullmatch(filled)
            assert not theirs.matches(filled), template


class _Anything(dict):
    def __missing__(self, key: str) -> str:
        return f"x_{key}"


def test_the_demo_evaluates_a_chosen_count_across_categories(demo_data: dict) -> None:
    chosen = list(read_tasks(Path(demo_data["eval_tasks"])))
    assert len(chosen) == 24
    assert {t.category for t in chosen} == set(get_args(TaskCategory))
    assert {t.repo_name for t in chosen} == set(DEFAULT_PLAN.held_out)
    full = [t for path in demo_data["held_out_tasks"] for t in read_tasks(Path(path))]
    assert {t.id for t in chosen} <= {t.id for t in full}
    assert eval_subset(full, 24) == chosen
    assert eval_subset(full, None) == full
    assert eval_subset(full, 24, seed=1) != chosen


def test_tasks_are_shared_out_evenly() -> None:
    assert per_package(10, ("a", "b", "c")) == {"a": 4, "b": 3, "c": 3}
