"""The harvester on traces of real runs: the run loop, a scripted model, real tools and files."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from scripted_agent import run_scripted, tool_returns

from punie.data.harvest import harvest_traces
from punie.records.conversation import read_conversations
from punie.records.trace import RunOutcome
from punie.runtime.guards import Budgets
from punie.runtime.tools import cap_output

OPENAI_KEY = "sk-proj-" + "a1B2c3D4e5" * 4
GITHUB_TOKEN = "ghp_" + "Z9y8X7w6V5" * 4
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


def _reader(path: str, answer: str) -> FunctionModel:
    """A model that reads one file, then answers."""

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not tool_returns(messages):
            return ModelResponse(parts=[ToolCallPart("read_file", {"path": path})])
        return ModelResponse(parts=[TextPart(answer)])

    return FunctionModel(model)


def _looper(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[ToolCallPart("grep", {"pattern": "Shape"})])


def _run(model: FunctionModel, question: str, repo: Path, traces: Path) -> RunOutcome:
    return anyio.run(run_scripted, model, question, repo, traces, Budgets(repeat_limit=3))


def _traces(repo: Path, tmp_path: Path) -> tuple[Path, dict[str, RunOutcome]]:
    (repo / "config.txt").write_text(f"token: {GITHUB_TOKEN}\n{PEM}\n")
    (repo / "status.txt").write_text("[Tool execution completed]\n")
    (repo / "big.log").write_text("".join(f"line {i} of the log\n" for i in range(3000)))
    traces = tmp_path / "traces.jsonl"
    runs = {
        "square": _run(
            _reader("pkg/shapes.py", "Square is on line 6."), "Where is Square?", repo, traces
        ),
        "square_again": _run(
            _reader("pkg/shapes.py", "Square is on line 6."), "Where is Square?", repo, traces
        ),
        "secret": _run(
            _reader("config.txt", f"The key {OPENAI_KEY} is set; use Bearer abcdefgh12345678."),
            "What is in config.txt?",
            repo,
            traces,
        ),
        "placeholder": _run(
            _reader("status.txt", "It says the tool completed."), "Status?", repo, traces
        ),
        "big": _run(_reader("big.log", "The log has 3000 lines."), "How long?", repo, traces),
        "loop": _run(FunctionModel(_looper), "Find Shape", repo, traces),
    }
    return traces, runs


def test_harvest_keeps_answered_runs_drops_the_rest_and_redacts(repo: Path, tmp_path: Path) -> None:
    traces, runs = _traces(repo, tmp_path)
    out = tmp_path / "harvest.jsonl"
    report = harvest_traces(traces, out, output_limit=2000)
    kept = {c.meta.row_id: c for c in read_conversations(out)}

    assert report.runs_read == 6
    assert set(kept) == {runs["square"].run_id, runs["secret"].run_id, runs["big"].run_id}
    assert dict(report.dropped) == {
        "duplicate": 1,
        "placeholder_result": 1,
        "status_loop_detected": 1,
    }

    square = kept[runs["square"].run_id]
    assert [m.role for m in square.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert square.messages[2].tool_calls[0].arguments == {"path": "pkg/shapes.py"}
    assert square.messages[3].content == (repo / "pkg" / "shapes.py").read_text()
    assert square.messages[-1].content == "Square is on line 6."

    secret = kept[runs["secret"].run_id]
    assert secret.messages[3].content == "token: [REDACTED GITHUB TOKEN]\n[REDACTED PRIVATE KEY]\n"
    assert secret.messages[-1].content == (
        "The key [REDACTED API KEY] is set; use Bearer [REDACTED TOKEN]."
    )
    dumped = out.read_text()
    for secret_text in (OPENAI_KEY, GITHUB_TOKEN, "b3BlbnNzaC1rZXktdjEAAAAA", "abcdefgh12345678"):
        assert secret_text not in dumped
    assert report.redacted["github_token"] == 1 and report.redacted["private_key"] == 1

    big = kept[runs["big"].run_id]
    original = runs["big"].tool_calls[0].result
    assert original is not None and len(original) > 2000
    assert big.messages[3].content == cap_output(original, 2000)
    assert "characters truncated ...]" in big.messages[3].content
    assert report.truncated_results == 1


def test_verified_keeps_only_runs_that_passed(repo: Path, tmp_path: Path) -> None:
    traces, runs = _traces(repo, tmp_path)
    results = tmp_path / "eval_results.jsonl"
    rows = [
        {"run_id": runs["square"].run_id, "passed": True, "task_id": "t1"},
        {"run_id": runs["secret"].run_id, "passed": False},
        {"run_id": runs["loop"].run_id, "passed": True},
    ]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "verified.jsonl"
    report = harvest_traces(traces, out, verified=results)
    assert [c.meta.row_id for c in read_conversations(out)] == [runs["square"].run_id]
    # secret failed; big, placeholder and the second square run have no passing row
    assert report.dropped["not_verified"] == 4
    assert report.dropped["status_loop_detected"] == 1


def test_a_bad_results_file_is_one_clear_error(repo: Path, tmp_path: Path) -> None:
    traces, _ = _traces(repo, tmp_path)
    results = tmp_path / "results.jsonl"
    results.write_text('{"run_id": "abc"}\n')
    try:
        harvest_traces(traces, tmp_path / "o.jsonl", verified=results)
    except Exception as exc:
        assert "results.jsonl:1" in str(exc) and "'passed'" in str(exc)
    else:
        raise AssertionError("a row without 'passed' must be refused")


def test_verified_harvest_names_the_task_repository_and_skips_known_questions(
    repo: Path, tmp_path: Path
) -> None:
    traces, runs = _traces(repo, tmp_path)
    results = tmp_path / "results.jsonl"
    rows = [
        {"run_id": runs["square"].run_id, "passed": True, "repo_name": "shapes"},
        {"run_id": runs["secret"].run_id, "passed": True, "repo_name": "shapes"},
        {"run_id": runs["big"].run_id, "passed": False, "repo_name": "shapes"},
    ]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "verified.jsonl"
    report = harvest_traces(
        traces, out, verified=results, exclude_questions={"What is in config.txt?"}
    )
    kept = list(read_conversations(out))
    assert [c.meta.row_id for c in kept] == [runs["square"].run_id]
    assert kept[0].meta.repository == "shapes"  # the task's name, not the folder's
    assert kept[0].meta.source == "harvested"
    assert report.dropped["question_already_in_training"] == 1
    # big failed; square_again and placeholder have no result row
    assert report.dropped["not_verified"] == 3


def _retrier(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Reads with an argument the tool does not take, then reads properly, then answers."""
    returns = tool_returns(messages)
    if not returns:
        bad = {"path": "pkg/shapes.py", "content": "x"}
        return ModelResponse(parts=[ToolCallPart("read_file", bad, tool_call_id="bad")])
    if len(returns) == 1:
        good = {"path": "pkg/shapes.py"}
        return ModelResponse(parts=[ToolCallPart("read_file", good, tool_call_id="good")])
    return ModelResponse(parts=[TextPart("Square is on line 6.")])


def test_a_retried_call_is_kept_as_context_out_of_the_loss(repo: Path, tmp_path: Path) -> None:
    """The call pydantic-ai rejected (and the model then fixed) stays in the conversation with
    `training` False, so the model learns the fix and not the mistake; the rest is trained."""
    traces = tmp_path / "traces.jsonl"
    outcome = _run(FunctionModel(_retrier), "Where is Square?", repo, traces)
    assert [c.executed for c in outcome.tool_calls] == [False, True]
    out = tmp_path / "harvest.jsonl"
    report = harvest_traces(traces, out)
    assert report.kept == 1, dict(report.dropped)
    [conversation] = read_conversations(out)
    turns = [m for m in conversation.messages if m.role == "assistant"]
    assert [m.training for m in turns] == [False, True, True]
    assert turns[0].tool_calls[0].arguments == {"path": "pkg/shapes.py", "content": "x"}
    row = conversation.to_openai()
    assert [m.get("training", True) for m in row["messages"] if m["role"] == "assistant"] == [
        False,
        True,
        True,
    ]
