"""The run loop on a scripted model (FunctionModel): real tools, real repository, real traces."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from scripted_agent import run_scripted, tool_returns

from punie.records.trace import RunStatus, read_traces
from punie.runtime.guards import Budgets


async def _run(model: FunctionModel, repo: Path, tmp_path: Path, budgets: Budgets | None = None):
    trace = tmp_path / "traces.jsonl"
    outcome = await run_scripted(model, "Where is Square defined?", repo, trace, budgets)
    return outcome, list(read_traces(trace))


async def test_text_tool_calls_run_as_real_tools_and_results_reach_the_model(
    repo: Path, tmp_path: Path
) -> None:
    seen: list[list[ToolReturnPart]] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = tool_returns(messages)
        seen.append(returns)
        if not returns:
            fence = '```json\n{"name": "grep", "arguments": {"pattern": "class Square"}}\n```'
            return ModelResponse(parts=[TextPart(f"Let me search.\n{fence}")])
        if len(returns) == 1:
            tag = '<tool_call>\n{"name": "read_file", "arguments": {"path": "pkg/shapes.py", '
            tag += '"start_line": 6, "end_line": 6}}\n</tool_call>'
            return ModelResponse(parts=[TextPart(tag)])
        return ModelResponse(parts=[TextPart("Square is defined in pkg/shapes.py, line 6.")])

    outcome, traces = await _run(FunctionModel(model), repo, tmp_path)

    assert outcome.status is RunStatus.ANSWERED
    assert outcome.output == "Square is defined in pkg/shapes.py, line 6."
    assert [c.name for c in outcome.tool_calls] == ["grep", "read_file"]
    grep_result = seen[1][0].content
    assert "pkg/shapes.py:6:" in grep_result and "class Square(Shape):" in grep_result
    assert "class Square(Shape):" in seen[2][1].content
    assert outcome.exchanges[0].recovered_text_calls == 1
    assert outcome.exchanges[1].recovered_text_calls == 1
    assert traces[0].tool_calls[0].result == grep_result


async def test_the_same_call_forever_ends_loop_detected_with_every_call_traced(
    repo: Path, tmp_path: Path
) -> None:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart("grep", {"pattern": "Shape"})])

    outcome, traces = await _run(FunctionModel(model), repo, tmp_path, Budgets(repeat_limit=3))

    assert outcome.status is RunStatus.LOOP_DETECTED
    assert outcome.output is None
    assert [c.executed for c in outcome.tool_calls] == [True, True, False]
    assert len(traces) == 1 and traces[0].status is RunStatus.LOOP_DETECTED
    assert len(traces[0].tool_calls) == 3
    assert traces[0].transcript, "the partial transcript is kept"


async def test_degenerate_output_ends_the_run(repo: Path, tmp_path: Path) -> None:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("Paris" + "!!" * 300)])

    outcome, _ = await _run(FunctionModel(model), repo, tmp_path)
    assert outcome.status is RunStatus.DEGENERATE_OUTPUT
    assert "'!'" in (outcome.reason or "")


async def test_varied_calls_without_an_answer_exhaust_the_request_budget(
    repo: Path, tmp_path: Path
) -> None:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        step = len(tool_returns(messages))
        return ModelResponse(parts=[ToolCallPart("grep", {"pattern": f"x{step}"})])

    outcome, traces = await _run(FunctionModel(model), repo, tmp_path, Budgets(max_requests=4))
    assert outcome.status is RunStatus.BUDGET_EXHAUSTED
    assert len(outcome.tool_calls) == 4
    assert traces[0].status is RunStatus.BUDGET_EXHAUSTED


async def test_tool_errors_go_back_to_the_model_as_results(repo: Path, tmp_path: Path) -> None:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = tool_returns(messages)
        if not returns:
            return ModelResponse(parts=[ToolCallPart("read_file", {"path": "../outside.txt"})])
        return ModelResponse(parts=[TextPart(f"I got: {returns[0].content}")])

    outcome, _ = await _run(FunctionModel(model), repo, tmp_path)
    assert outcome.status is RunStatus.ANSWERED
    assert outcome.output is not None and outcome.output.startswith("I got: Error:")
    assert "outside the workspace" in outcome.output
    assert outcome.tool_calls[0].error is not None


async def test_a_reply_that_runs_on_past_its_end_of_turn_is_cut(repo: Path, tmp_path: Path) -> None:
    leaked = (
        "The answer is 4.<|im_end|>\n<|im_start|>user\nCan you book a flight?<|im_end|>"
        + "!<|im_end|>" * 50
    )

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart(leaked)])

    outcome, traces = await _run(FunctionModel(model), repo, tmp_path)
    assert outcome.status is RunStatus.ANSWERED
    assert outcome.output == "The answer is 4."
    assert traces[0].exchanges[0].cut_at_marker
    assert json.dumps(traces[0].transcript).count("book a flight") == 0


async def test_each_traced_call_carries_its_result_kind_and_the_sandbox(
    repo: Path, tmp_path: Path
) -> None:
    calls = [
        ToolCallPart("grep", {"pattern": "class Square"}),
        ToolCallPart("grep", {"pattern": "class ("}),
        ToolCallPart("read_file", {"path": "pkg"}),
        ToolCallPart("run_command", {"command": "echo hi"}),
    ]

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        step = len(tool_returns(messages))
        if step < len(calls):
            return ModelResponse(parts=[calls[step]])
        return ModelResponse(parts=[TextPart("done")])

    outcome, traces = await _run(FunctionModel(model), repo, tmp_path)
    kinds = [(c.name, c.kind, c.sandbox) for c in traces[0].tool_calls]
    sandbox = outcome.tool_calls[-1].sandbox
    assert kinds == [
        ("grep", "matches", None),
        ("grep", "bad_pattern", None),
        ("read_file", "is_directory", None),
        ("run_command", "command", sandbox),
    ]
    assert sandbox in {"bubblewrap", "sandbox-exec", "none", "unsandboxed"}


async def test_the_tool_output_budget_caps_what_the_model_is_sent(
    repo: Path, tmp_path: Path
) -> None:
    (repo / "big.txt").write_text("".join(f"line {i:05d}\n" for i in range(3000)))

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("read_file", {"path": "big.txt"})])
        return ModelResponse(parts=[TextPart("done")])

    budgets = Budgets(max_tool_output_chars=1000)
    outcome, traces = await _run(FunctionModel(model), repo, tmp_path, budgets)
    (call,) = outcome.tool_calls
    assert len(call.result or "") < 1200  # the cap plus the note of what was left out
    assert call.result.startswith("line 00000") and "read on with start_line=" in call.result
    assert traces[0].tool_calls[0].result == call.result
    uncapped, _ = await _run(FunctionModel(model), repo, tmp_path)
    assert len(uncapped.tool_calls[0].result or "") > 15_000
