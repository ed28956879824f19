"""The executed verdict on real runs: a call whose arguments the strict checker rejects but whose
real result (the tool run on the task's repository) still holds the expected fact is right."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import platformdirs as platformdirs_package
import pytest
from scripted_server import ScriptedServer, text_reply, tool_reply

from punie.data.generate.tasks import generate_tasks
from punie.evaluation import EvalTarget, evaluate
from punie.evaluation.checks import ArgumentCheck, check_executed
from punie.mlx.embedded import embedded_model_dir
from punie.records.task import TaskSpec

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
