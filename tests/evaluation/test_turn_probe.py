"""The turn probe: cases from real generated gold conversations, scoring of replies, and the
batched, prefix-cached generation against plain greedy generation of the whole prompt."""

from __future__ import annotations

import json
from pathlib import Path

import platformdirs as platformdirs_package
import pytest
from check_scripts import run_check_script

from punie.data.generate.tasks import generate_tasks
from punie.evaluation.turns import (
    score_case,
    summarize_turns,
    turn_cases,
)

PACKAGE = Path(platformdirs_package.__file__).parent
CHECK = Path(__file__).with_name("turn_probe_check.py")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    tasks, _ = generate_tasks(
        PACKAGE, repo_name="platformdirs", limit=40, seed=0,
        snapshot_dir=tmp_path_factory.mktemp("snap"), phrasing="held_out",
    )  # fmt: skip
    return tasks


def _cases(generated, kind: str):
    chosen = [g for g in generated if g.task.kind == kind][:1]
    assert chosen, kind
    return turn_cases([g.task for g in chosen], [g.conversation for g in chosen])


def _gold_text(case, generated) -> str:
    """The gold turn the case asks for, as the model would write it."""
    conversation = next(g.conversation for g in generated if g.task.id == case.task_id)
    row = conversation.to_openai()
    turn = row["messages"][len(case.messages)]
    if turn.get("tool_calls"):
        call = turn["tool_calls"][0]["function"]
        arguments = call["arguments"]
        if isinstance(arguments, str):
            arguments = json.loads(arguments)
        body = json.dumps({"name": call["name"], "arguments": arguments})
        return f"<tool_call>\n{body}\n</tool_call>"
    return turn["content"]


def test_a_multi_step_task_gives_a_first_call_a_next_call_and_an_answer(generated):
    cases = _cases(generated, "find_then_read_parameters")
    assert [c.role for c in cases] == ["first_call", "next_call", "answer"]
    first, second, answer = cases
    assert first.messages[-1]["role"] == "user"
    assert second.messages[-1]["role"] == "tool"  # the real grep result is in the history
    assert second.expected_tool == "read_file"
    assert answer.required_facts and answer.expected_tool is None
    for case in cases:  # the gold turn itself is right
        assert score_case(case, _gold_text(case, generated), ended=True).right


def test_a_direct_answer_task_gives_one_direct_turn(generated):
    (case,) = _cases(generated, "direct_answer")
    assert case.role == "direct"
    assert score_case(case, _gold_text(case, generated), ended=True).right


def test_wrong_replies_are_wrong_and_say_why(generated):
    first, _, answer = _cases(generated, "find_then_read_parameters")
    no_call = score_case(first, "It is in some file.", ended=True)
    assert not no_call.right and "called no tool" in no_call.errors
    wrong_tool = score_case(
        first, '<tool_call>\n{"name": "run_command", "arguments": {"command": "ls"}}\n</tool_call>',
        ended=True,
    )  # fmt: skip
    assert not wrong_tool.right and "wrong tool" in wrong_tool.errors[0]
    gold = _gold_text(answer, generated)
    assert not score_case(answer, gold, ended=False).right  # ran out of tokens
    echoed = score_case(answer, f"<tool_response>\n{gold}\n</tool_response>", ended=True)
    assert not echoed.right and "markup" in echoed.errors[0]
    vague = score_case(answer, "It takes some parameters.", ended=True)
    assert not vague.right and "missing facts" in vague.errors[0]


def test_the_summary_counts_roles_and_whole_tasks(generated):
    cases = _cases(generated, "find_then_read_parameters") + _cases(generated, "direct_answer")
    verdicts = [score_case(c, _gold_text(c, generated), ended=True) for c in cases]
    verdicts[0] = score_case(cases[0], "no idea", ended=True)
    summary = summarize_turns(verdicts)
    assert summary["first_call"]["n"] == 1 and summary["first_call"]["rate"] == 0.0
    assert summary["all_turns"]["n"] == 4 and summary["all_turns"]["rate"] == 0.75
    assert summary["tasks_all_right"]["n"] == 2 and summary["tasks_all_right"]["rate"] == 0.5
    low, high = summary["all_turns"]["low"], summary["all_turns"]["high"]
    assert low < 0.75 < high


@pytest.mark.slow
def test_batched_prefix_cached_turns_equal_plain_greedy_generation(generated, tmp_path):
    """The shared-prefix cache and batching change nothing: each reply is what greedy generation
    of the whole prompt writes. Both run in a child with the fast BLAS, as the probe does (in
    pytest's own process MLX has the wheel's reference BLAS, 30x slower)."""
    from punie.mlx.embedded import embedded_model_dir

    cases = _cases(generated, "find_then_read_parameters") + _cases(generated, "find_class")
    prompts = [{"messages": c.messages, "tools": c.tools} for c in cases]
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(prompts), encoding="utf-8")
    report = run_check_script(
        CHECK, str(embedded_model_dir()), str(prompts_file), "40", timeout=600
    )
    assert len(report["batched"]) == len(cases) == len(report["plain"])
    assert any(p["text"] for p in report["plain"])  # it generated something to compare
    for batched, plain in zip(report["batched"], report["plain"], strict=True):
        assert batched["text"] == plain["text"]
        assert batched["ended"] == plain["ended"]
