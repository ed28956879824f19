"""The shipped eval suite is true: every task checked against the fixture with the real tools."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from punie.errors import DataError, ToolError
from punie.evaluation.checks import check_call, check_executed, missing_facts, result_holds
from punie.evaluation.suite import EVAL_DIR, TOOL_CATEGORIES, load_suite, shipped_suites
from punie.records.task import TaskSpec
from punie.records.toolset import tool_parameters
from punie.runtime.tools import Workspace, detect_sandbox, grep, read_file, run_command

SUITE = EVAL_DIR / "bookshelf.jsonl"
TASKS = load_suite([SUITE])
SCHEMAS = tool_parameters()


@pytest.fixture(scope="module")
def fixture_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the fixture project, so running its tests leaves no caches in eval/."""
    target = tmp_path_factory.mktemp("fixture") / "bookshelf"
    shutil.copytree(Path(TASKS[0].repo), target)
    return target


def _first_call(task: TaskSpec) -> dict:
    """The expected first call with the first acceptable value of every required argument."""
    return {
        name: values[0]
        for name, values in task.expected_arguments.items()
        if name not in task.optional_arguments
    }


def _call(task: TaskSpec, repo: Path) -> str:
    ws = Workspace(repo)
    args = _first_call(task)
    if task.expected_tool == "grep":
        return grep(ws, args["pattern"], args.get("path", "."), glob=args.get("glob"))
    if task.expected_tool == "read_file":
        return read_file(ws, args["path"], args.get("start_line"), args.get("end_line"))
    if task.expected_tool == "run_command":
        return run_command(ws, args["command"], timeout_s=60, sandbox=detect_sandbox())
    raise AssertionError(f"no runner for {task.expected_tool}")


def _repo_text(repo: Path) -> str:
    """Every Python file's path and text."""
    files = sorted(repo.rglob("*.py"))
    return "\n".join(f"{p.relative_to(repo)}\n{p.read_text()}" for p in files)


def test_the_suite_covers_every_category_with_unique_ids() -> None:
    assert shipped_suites() == [SUITE] or SUITE in shipped_suites()
    counts = Counter(t.category for t in TASKS)
    for category in ("single_tool", "multi_step", "direct_answer", "recovery"):
        assert counts[category] >= 3, category
    assert counts["cannot_answer"] + counts["ask_back"] >= 4
    assert len({t.id for t in TASKS}) == len(TASKS)
    assert all(Path(t.repo).is_dir() and Path(t.repo).is_absolute() for t in TASKS)


@pytest.mark.parametrize("task", TASKS, ids=[t.id for t in TASKS])
def test_each_task_is_true_against_the_fixture(task: TaskSpec, fixture_copy: Path) -> None:
    if task.category not in TOOL_CATEGORIES:
        assert task.expected_tool is None
        assert task.expected_arguments == {}
        return
    assert task.expected_tool in SCHEMAS
    # The expected call itself passes the checker (the task is self-consistent).
    verdict = check_call(
        task.expected_tool,
        _first_call(task),
        expected_tool=task.expected_tool,
        expected_arguments=task.expected_arguments,
        optional_arguments=task.optional_arguments,
        schema=SCHEMAS[task.expected_tool],
    )
    assert verdict.valid, verdict.errors
    if task.category == "recovery":
        # The first result is an error the model must act on; the answer is still in the repo.
        with pytest.raises(ToolError):
            _call(task, fixture_copy)
        assert missing_facts(_repo_text(fixture_copy), task.required_facts) == []
        return
    result = _call(task, fixture_copy)
    if task.category == "single_tool":
        assert missing_facts(result, task.required_facts) == [], result
        return
    # Multi-step: the first result points at a file; reading that file gives the facts.
    files = sorted(set(re.findall(r"^([\w/.]+\.py):\d+:", result, re.MULTILINE)))
    assert files, result
    texts = "\n".join(read_file(Workspace(fixture_copy), f) for f in files)
    assert missing_facts(result, task.required_facts) != [], "needs a second step"
    assert missing_facts(texts, task.required_facts) == []


WITH_RESULT_FACTS = [t for t in TASKS if t.result_facts]


def test_every_grep_task_has_result_facts() -> None:
    """Each grep task can give the executed verdict (a narrower or other pattern that still
    finds the answer is right)."""
    assert {t.id for t in TASKS if t.expected_tool == "grep"} == {t.id for t in WITH_RESULT_FACTS}


@pytest.mark.parametrize("task", WITH_RESULT_FACTS, ids=[t.id for t in WITH_RESULT_FACTS])
def test_result_facts_are_what_a_right_grep_returns(task: TaskSpec, fixture_copy: Path) -> None:
    args = _first_call(task)
    result = grep(Workspace(fixture_copy), args["pattern"], ".", glob="*.py")
    assert result_holds(result, task.result_facts) == [], result


def test_the_executed_verdict_accepts_another_pattern_that_finds_the_class(
    fixture_copy: Path,
) -> None:
    task = next(t for t in TASKS if t.id == "bookshelf-where-loanservice")
    args = {"pattern": "class LoanService[(:]"}
    strict = check_call(
        "grep",
        args,
        expected_tool="grep",
        expected_arguments=task.expected_arguments,
        optional_arguments=task.optional_arguments,
        schema=SCHEMAS["grep"],
    )
    assert not strict.valid
    result = grep(Workspace(fixture_copy), args["pattern"], ".")
    executed = check_executed(
        "grep",
        args,
        result,
        strict=strict,
        expected_tool="grep",
        result_facts=task.result_facts,
        schema=SCHEMAS["grep"],
    )
    assert executed.valid, executed.errors
    wrong = grep(Workspace(fixture_copy), "class Catalog[(:]", ".")
    assert not check_executed(
        "grep",
        {"pattern": "class Catalog[(:]"},
        wrong,
        strict=strict,
        expected_tool="grep",
        result_facts=task.result_facts,
        schema=SCHEMAS["grep"],
    ).valid


def test_a_missing_repository_names_the_task(tmp_path: Path) -> None:
    bad = TASKS[0].model_copy(update={"repo": "no/such/folder"})
    path = tmp_path / "tasks.jsonl"
    path.write_text(bad.model_dump_json() + "\n")
    with pytest.raises(DataError, match=f"task {bad.id!r} names repository 'no/such/folder'"):
        load_suite([path])
