"""The executed verdict on real runs: a call whose arguments the strict checker rejects but whose
real result (the tool run on the task's repository) still holds the expected fact is right."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import platformdirs as platformdirs_package
import pytest
from scripted_server import ScriptedServer, text_reply, tool_reply

from punie.data.generate.facts import scan_repository
from punie.data.generate.tasks import generate_tasks
from punie.data.generate.toolbox import Toolbox
from punie.evaluation import EvalTarget, evaluate
from punie.evaluation.checks import ArgumentCheck, check_executed, result_holds
from punie.mlx.embedded import embedded_model_dir
from punie.records.task import TaskSpec
from punie.records.toolset import tool_parameters

PACKAGE = Path(platformdirs_package.__file__).parent


@pytest.fixture(scope="module")
def lookups(tmp_path_factory: pytest.TempPathFactory) -> list[TaskSpec]:
    generated, _ = generate_tasks(
        PACKAGE,
        repo_name="platformdirs",
        limit=60,
        seed=0,
        snapshot_dir=tmp_path_factory.mktemp("snap"),
        phrasing="held_out",
    )
    found = [g.task for g in generated if g.task.kind in ("find_class", "find_function")]
    assert len(found) >= 4
    return found


def _place(task: TaskSpec) -> tuple[str, int]:
    path, line = task.required_facts
    return path, int(line)


def _run(tasks: list[TaskSpec], calls: dict[str, dict[str, Any]], out: Path) -> dict[str, dict]:
    """Each task's first call is `calls[task.question]`; then the answer names the place."""
    by_question = {t.question: t for t in tasks}

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        question = next(m["content"] for m in body["messages"] if m["role"] == "user")
        if not any(m["role"] == "tool" for m in body["messages"]):
            return tool_reply("grep", calls[question])
        path, line = _place(by_question[question])
        return text_reply(f"It is defined in {path} at line {line}.")

    with ScriptedServer([reply]) as server:
        target = EvalTarget("scripted", model=str(embedded_model_dir()), base_url=server.base_url)
        report = evaluate(tasks, [target], out_dir=out, concurrency=2, show_progress=False)
    rows = [json.loads(line) for line in Path(report.results_path).read_text().splitlines()]
    return {r["task_id"]: r for r in rows}


def test_a_narrowed_search_that_still_finds_the_answer_is_right_when_executed(
    lookups: list[TaskSpec], tmp_path: Path
) -> None:
    narrowed, elsewhere, wrong_type = lookups[:3]
    calls = {}
    path, _ = _place(narrowed)
    name = next(p for p in narrowed.expected_arguments["pattern"] if " " not in p)
    # Narrowed to the very file: the strict checker rejects the path, the result holds the hit.
    calls[narrowed.question] = {"pattern": name, "path": path, "glob": "*.py"}
    # Narrowed to a file that does not hold the definition: wrong both ways.
    other = next(t for t in lookups if _place(t)[0] != _place(elsewhere)[0])
    calls[elsewhere.question] = {
        "pattern": next(p for p in elsewhere.expected_arguments["pattern"] if " " not in p),
        "path": _place(other)[0],
    }
    # A value of the wrong type stays wrong, whatever it finds.
    calls[wrong_type.question] = {"pattern": "def", "path": ".", "glob": 7}
    rows = _run([narrowed, elsewhere, wrong_type], calls, tmp_path)

    right = rows[narrowed.id]
    assert right["arguments_ok"] is False and right["passed"] is False
    assert any("path" in e for e in right["argument_errors"])
    assert right["arguments_executed_ok"] is True and right["passed_executed"] is True

    missed = rows[elsewhere.id]
    assert missed["arguments_ok"] is False and missed["arguments_executed_ok"] is False
    assert any("does not hold" in e for e in missed["executed_errors"])

    typed = rows[wrong_type.id]
    assert typed["arguments_executed_ok"] is False
    assert any("expected string" in e for e in typed["executed_errors"])


def test_the_executed_verdict_judges_values_by_the_result_not_by_the_strict_verdict() -> None:
    """A grep the strict checker accepts because its pattern is free (a subclasses task) but
    which found nothing is wrong when executed; one that ran and holds the facts is right."""
    accepted = ArgumentCheck(True)
    found_nothing = check_executed(
        "grep", {"pattern": "class .*[(, ]type[),]"}, "no matches for 'class .*[(, ]type[),]'",
        strict=accepted, expected_tool="grep", result_facts=["a.py:1: "],
    )  # fmt: skip
    assert not found_nothing.valid
    assert found_nothing.errors == ("its result does not hold 'a.py:1: '",)
    did_not_run = check_executed(
        "grep", {"pattern": "x"}, None, strict=accepted, expected_tool="grep",
        result_facts=["a.py:1: "],
    )  # fmt: skip
    assert did_not_run.errors == ("the call did not run, so it has no result",)
    assert check_executed(
        "grep", {"pattern": "x"}, "a.py:1: class X(Base):", strict=accepted,
        expected_tool="grep", result_facts=["a.py:1: "],
    ).valid  # fmt: skip
    rejected = ArgumentCheck(False, ("unexpected parameter 'glob'",))
    assert check_executed(
        "read_file", {"path": "a.py"}, "a.py:1: x", strict=rejected, expected_tool="grep",
        result_facts=["a.py:1: "],
    ).errors == ("wrong tool: called 'read_file', expected 'grep'",)  # fmt: skip
    no_facts = check_executed(
        "grep", {"pattern": "y"}, "a.py:1: y", strict=rejected, expected_tool="grep",
        result_facts=[],
    )  # fmt: skip
    assert no_facts is rejected


@pytest.fixture(scope="module")
def free_call_tasks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TaskSpec]:
    """One task of each kind whose strict check leaves the call free, from anyio (it has every
    one of them), generated with the held-out wording."""
    generated, _ = generate_tasks(
        Path(anyio.__file__).parent,
        repo_name="anyio",
        limit=60,
        seed=0,
        snapshot_dir=tmp_path_factory.mktemp("snap"),
        phrasing="held_out",
    )
    kinds = ("count_python_files", "list_folder", "missing_symbol", "ask_back_ambiguous_name")
    chosen: dict[str, TaskSpec] = {}
    for g in generated:
        # A count of a folder (named in backticks), not of the whole repository.
        whole = g.task.kind == "count_python_files" and "`" not in g.task.question
        if g.task.kind in kinds and g.task.kind not in chosen and not whole:
            chosen[g.task.kind] = g.task
    assert sorted(chosen) == sorted(kinds)
    return chosen


@pytest.fixture(scope="module")
def ambiguous_names(free_call_tasks: dict[str, TaskSpec]) -> set[str]:
    """Names defined more than once in anyio (by the AST)."""
    facts = scan_repository(Path(free_call_tasks["list_folder"].repo))
    counts = Counter(d.name for d in facts.definitions)
    return {name for name, n in counts.items() if n > 1}


def _executed(task: TaskSpec, name: str, arguments: dict[str, Any]) -> ArgumentCheck:
    """The executed verdict on `name(**arguments)` run for real on the task's repository, as
    the eval runs it, with the strict verdict accepting (the call is free for these kinds)."""
    tools = Toolbox(Path(task.repo))
    try:
        result = tools.call(name, arguments).result
    finally:
        tools.close()
    return check_executed(
        name, arguments, result, strict=ArgumentCheck(True), expected_tool=task.expected_tool,
        result_facts=task.result_facts, schema=tool_parameters()[name],
    )  # fmt: skip


def test_free_calls_are_judged_by_what_they_found(
    free_call_tasks: dict[str, TaskSpec], ambiguous_names: set[str]
) -> None:
    """Calls the tuned model really made on held-out tasks, which the strict checker accepts
    because these kinds leave the call free: each is right only when its real result holds
    what the task needs (seen in the traces of the demo's adapter before the rule)."""
    count = free_call_tasks["count_python_files"]
    folder = count.question.split("`")[1]
    assert _executed(count, "run_command", {"command": f"find {folder} -name '*.py' | wc -l"}).valid
    assert _executed(count, "run_command", {"command": f"ls {folder} | wc -l"}).valid is (
        len(os.listdir(Path(count.repo) / folder)) == int(count.required_facts[0])
    )
    assert not _executed(count, "run_command", {"command": "find . -name '*.py' | wc -l"}).valid
    assert not _executed(count, "run_command", {"command": f"wc -l {folder}"}).valid

    listing = free_call_tasks["list_folder"]
    where = listing.question.split("`")[1] if "`" in listing.question else "."
    assert _executed(listing, "run_command", {"command": f"ls -la {where}"}).valid
    bad = _executed(listing, "run_command", {"command": "find . -name 'repository root' | wc -l"})
    assert not bad.valid and "its result does not hold" in bad.errors[0]

    missing = free_call_tasks["missing_symbol"]
    name = missing.required_facts[0]
    assert _executed(missing, "grep", {"pattern": name}).valid
    assert _executed(missing, "grep", {"pattern": f"def {name}[(]", "glob": "*.py"}).valid
    assert not _executed(missing, "grep", {"pattern": name[:-1] + "x"}).valid

    ambiguous = free_call_tasks["ask_back_ambiguous_name"]
    assert len(ambiguous.result_facts) >= 2
    name = next(n for n in re.findall(r"\w+", ambiguous.question) if n in ambiguous_names)
    assert _executed(ambiguous, "grep", {"pattern": f"(def|class) {name}\\b"}).valid
    assert not _executed(ambiguous, "grep", {"pattern": f"def {name.swapcase()}[(]"}).valid
    # One of the definitions is not enough to ask which one is meant.
    path = ambiguous.result_facts[0].rsplit(":", 1)[0]
    one = _executed(ambiguous, "grep", {"pattern": f"(def|class) {name}\\b", "path": path})
    assert not one.valid


def test_a_result_holds_a_fact_only_as_a_whole_token() -> None:
    """A count of 3 is not held by a result of 13; a path is held inside `path:line: text`."""
    assert result_holds("exit code: 0\n13\n", ["3"]) == ["3"]
    assert result_holds("exit code: 0\n3\n", ["3"]) == []
    assert result_holds("_unix.py:4: x", ["unix.py:4"]) == ["unix.py:4"]
    assert result_holds("a/_unix.py:4: x", ["_unix.py:4"]) == []
    assert result_holds(None, ["x"]) == ["x"]
