"""Metrics on scripted runs over real HTTP: a right call, a wrong argument, a loop, a runaway.

The scripted server answers by question, so the four tasks run concurrently through
`evaluate` exactly as against a real server; the numbers below follow from the script.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scripted_server import ScriptedServer, text_reply, tool_reply
from tokenizers import Tokenizer

from punie.evaluation import EvalTarget, evaluate, load_suite
from punie.evaluation.report import markdown_table
from punie.evaluation.suite import EVAL_DIR
from punie.mlx.embedded import embedded_model_dir
from punie.records.profile import resolve_profile
from punie.records.trace import RunStatus, read_traces

TASK_IDS = [
    "bookshelf-daily-fee",
    "bookshelf-models-head",
    "bookshelf-max-loans",
    "general-arithmetic",
]
ANSWER = "17 times 3 is 51."
RUNAWAY_TAIL = "\n<|im_start|>user\nThanks!<|im_end|>\n<|im_start|>assistant\nYou're welcome!"
RUNAWAY = ANSWER + "<|im_end|>" + RUNAWAY_TAIL


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    question = next(m["content"] for m in body["messages"] if m["role"] == "user")
    results = sum(1 for m in body["messages"] if m["role"] == "tool")
    if "daily late fee" in question:  # right tool, right arguments, right answer
        if results == 0:
            return tool_reply("read_file", {"path": "./bookshelf/fees.py"})
        return text_reply("The daily late fee is 25 cents.")
    if "lines 1 to 10" in question:  # an integer argument written as a string
        if results == 0:
            return tool_reply(
                "read_file", {"path": "bookshelf/models.py", "start_line": "1", "end_line": 10}
            )
        return text_reply("The enum Genre is defined there.")
    if "MAX_LOANS_PER_MEMBER" in question:  # the same call over and over
        return tool_reply("grep", {"pattern": "MAX_LOANS_PER_MEMBER"}, f"call_{results}")
    return text_reply(RUNAWAY)  # keeps writing the next turns after its answer


@pytest.fixture(scope="module")
def tasks():
    suite = {t.id: t for t in load_suite([EVAL_DIR / "bookshelf.jsonl"])}
    return [suite[i] for i in TASK_IDS]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return embedded_model_dir()


def _realistic_usage(model_dir: Path):
    """Usage as a server that generated the whole message reports it: its tokens, counted with
    the model's tokenizer (a tool call as the `<tool_call>` text the model writes)."""
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))

    def usage(message: dict[str, Any]) -> dict[str, int]:
        text = message.get("content") or ""
        for call in message.get("tool_calls") or []:
            function = call["function"]
            body = {"name": function["name"], "arguments": json.loads(function["arguments"])}
            text += f"<tool_call>\n{json.dumps(body)}\n</tool_call>"
        completion = len(tokenizer.encode(text, add_special_tokens=False).ids)
        return {
            "prompt_tokens": 10,
            "completion_tokens": completion,
            "total_tokens": 10 + completion,
        }

    return usage


def _evaluate(tasks, model_dir: Path, out_dir: Path, *, no_stop: bool, reply=_reply, usage=None):
    with ScriptedServer([reply], usage=usage) as server:
        target = EvalTarget("scripted", model=str(model_dir), base_url=server.base_url)
        report = evaluate(
            tasks, [target], out_dir=out_dir, concurrency=2, no_stop=no_stop, show_progress=False
        )
    return report, server.bodies


def test_metrics_of_scripted_runs_without_stop(tasks, model_dir: Path, tmp_path: Path) -> None:
    report, bodies = _evaluate(tasks, model_dir, tmp_path, no_stop=True)
    assert all("stop" not in body for body in bodies)
    rows = [json.loads(line) for line in Path(report.results_path).read_text().splitlines()]
    by_task = {r["task_id"]: r for r in rows}
    assert [r["task_id"] for r in rows] == TASK_IDS

    right, wrong_arg, loop, runaway = (by_task[i] for i in TASK_IDS)
    assert (right["status"], right["passed"], right["arguments_ok"]) == ("answered", True, True)
    assert (wrong_arg["status"], wrong_arg["passed"]) == ("answered", False)
    assert wrong_arg["tool_selection_ok"] is True and wrong_arg["answer_ok"] is True
    assert wrong_arg["argument_errors"] == [
        "parameter 'start_line': '1' is string, expected integer"
    ]
    assert (loop["status"], loop["turns"], loop["passed"]) == ("loop_detected", 3, False)
    # A right answer, but the model kept writing after its turn ended: not passed.
    assert runaway["status"] == "answered" and runaway["answer_ok"] is True
    assert runaway["passed"] is False and runaway["passed_executed"] is False
    assert runaway["arguments_ok"] is None and runaway["arguments_executed_ok"] is None

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    after = len(tokenizer.encode(RUNAWAY_TAIL, add_special_tokens=False).ids)
    assert after > 10
    assert runaway["tokens_after_end"] == after
    assert right["tokens_after_end"] == wrong_arg["tokens_after_end"] == 0
    # It wrote the user's next turn itself: an invented turn; the others did not.
    assert runaway["invented_turns"] == 1
    assert right["invented_turns"] == wrong_arg["invented_turns"] == loop["invented_turns"] == 0

    overall = report.overall("scripted")
    assert overall.runs == 4
    assert overall.termination_rate == 0.75
    assert overall.loop_rate == 0.25
    assert overall.degenerate_rate == 0.0
    assert overall.tool_selection_accuracy == 1.0
    assert overall.argument_accuracy == pytest.approx(2 / 3)
    assert overall.answer_accuracy == 0.75
    assert overall.pass_rate == 0.25
    assert overall.clean_stop_rate == 0.5
    assert overall.invented_turn_rate == 0.25
    assert overall.rates["invented_turn_rate"].n == 4
    # Every rate carries its Wilson 95% interval and the number of tasks it is over.
    passed = overall.rates["pass_rate"]
    assert (passed.n, passed.successes) == (4, 1)
    assert passed.low == pytest.approx(0.0456, abs=1e-3)
    assert passed.high == pytest.approx(0.6994, abs=1e-3)
    assert overall.rates["argument_accuracy"].n == 3
    assert overall.turns_per_task == (2 + 2 + 3 + 1) / 4
    # The scripted server reports 5 completion tokens per reply.
    assert overall.output_tokens_per_task == 5 * (2 + 2 + 3 + 1) / 4
    assert overall.tokens_after_end_per_task == after / 4
    single = report.metrics["scripted"]["single_tool"]
    assert (single.runs, single.pass_rate, single.loop_rate) == (3, pytest.approx(1 / 3), 1 / 3)
    direct = report.metrics["scripted"]["direct_answer"]
    assert (direct.runs, direct.argument_accuracy, direct.clean_stop_rate) == (1, None, 0.0)

    # The results' run ids are the traced runs' ids: the verified harvest joins on them.
    traces = list(read_traces(tmp_path / "scripted" / "traces.jsonl"))
    assert sorted(t.run_id for t in traces) == sorted(r["run_id"] for r in rows)
    assert {t.repo for t in traces} == {tasks[0].repo}, "traces name the task's repository"
    runaway_trace = next(t for t in traces if t.run_id == runaway["run_id"])
    assert runaway_trace.output == RUNAWAY  # nothing cut: the earlier failure, reproduced


def test_a_runaway_the_client_cut_still_counts_what_the_server_generated_after_the_end(
    tasks, model_dir: Path, tmp_path: Path
) -> None:
    """The server ignores `stop` and writes the next turns; the client cuts them off, but the
    server's usage says how many tokens it generated past the end: they count, and the run
    does not pass."""
    usage = _realistic_usage(model_dir)
    report, bodies = _evaluate(tasks[3:], model_dir, tmp_path, no_stop=False, usage=usage)
    profile = resolve_profile(str(model_dir), model_dir=model_dir)
    assert "<|im_end|>" in profile.stop_sequences
    assert bodies[0]["stop"] == list(profile.stop_sequences)
    (row,) = [json.loads(line) for line in Path(report.results_path).read_text().splitlines()]
    assert row["status"] == RunStatus.ANSWERED.value
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tail = len(tokenizer.encode(RUNAWAY_TAIL, add_special_tokens=False).ids)
    assert row["output_tokens"] == usage(text_reply(RUNAWAY))["completion_tokens"] > tail > 10
    assert row["tokens_after_end"] == tail
    assert row["answer_ok"] is True and row["passed"] is False
    (trace,) = read_traces(tmp_path / "scripted" / "traces.jsonl")
    assert trace.output == ANSWER
    assert trace.exchanges[0].cut_at_marker is True
    overall = report.overall("scripted")
    assert (overall.clean_stop_rate, overall.pass_rate) == (0.0, 0.0)


def test_a_reply_cut_right_at_its_end_of_turn_counts_nothing_after_it(
    tasks, model_dir: Path, tmp_path: Path
) -> None:
    """The same cut, but the server stopped right after the end-of-turn token: 0 after it."""
    report, _ = _evaluate(
        tasks[3:],
        model_dir,
        tmp_path,
        no_stop=False,
        reply=lambda body: text_reply(ANSWER + "<|im_end|>"),
        usage=_realistic_usage(model_dir),
    )
    (row,) = [json.loads(line) for line in Path(report.results_path).read_text().splitlines()]
    (trace,) = read_traces(tmp_path / "scripted" / "traces.jsonl")
    assert trace.exchanges[0].cut_at_marker is True
    assert (row["tokens_after_end"], row["passed"]) == (0, True)
    assert report.overall("scripted").clean_stop_rate == 1.0


@pytest.mark.parametrize("together", [False, True])
def test_report_files_hold_the_side_by_side_table(
    tasks, model_dir: Path, tmp_path: Path, together: bool
) -> None:
    usage = _realistic_usage(model_dir)
    with (
        ScriptedServer([_reply], usage=usage) as one,
        ScriptedServer([_reply], usage=usage) as two,
    ):
        targets = [
            EvalTarget("base", model=str(model_dir), base_url=one.base_url),
            EvalTarget("tuned", model=str(model_dir), base_url=two.base_url),
        ]
        report = evaluate(tasks, targets, out_dir=tmp_path, concurrency=4, show_progress=False,
                          together=together)  # fmt: skip
    markdown = Path(report.markdown_path).read_text()
    assert markdown == markdown_table(report)
    assert "| metric | base | tuned |" in markdown
    assert "| terminated | 75% (30–95%, n=4) | 75% (30–95%, n=4) |" in markdown
    assert "| loop | 25% (5–70%, n=4) | 25% (5–70%, n=4) |" in markdown
    assert "| arguments (strict) | 67% (21–94%, n=3) |" in markdown
    assert "| arguments (executed) | 67% (21–94%, n=3) |" in markdown
    assert "| passed (strict) | 25% (5–70%, n=4) |" in markdown
    for category in ("single_tool", "direct_answer", "overall"):
        for label in ("base", "tuned"):
            assert f"| {category} | {label} | " in markdown
    assert "| multi_step |" not in markdown
    assert Path(report.chart_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(Path(report.json_path).read_text())
    assert saved["metrics"]["tuned"]["overall"]["pass_rate"] == 0.25
    interval = saved["metrics"]["tuned"]["overall"]["rates"]["pass_rate"]
    assert interval["n"] == 4 and interval["low"] < 0.25 < interval["high"]
    assert [t["label"] for t in saved["targets"]] == ["base", "tuned"]
    rows = Path(report.results_path).read_text().splitlines()
    assert len(rows) == 8
    assert (tmp_path / "base" / "traces.jsonl").is_file()
    assert (tmp_path / "tuned" / "traces.jsonl").is_file()


@pytest.mark.parametrize(
    ("text", "invented"),
    [
        (RUNAWAY, True),
        ("Paris.<|im_end|>\n<|im_end|><|im_start|>system\nYou are...", True),
        ("Paris.\nUSER: and Berlin?", True),
        ("Paris.<|im_end|>", False),
        ("Paris.<|im_end|>!<|im_end|>!<|im_end|>", False),  # runaway, but no new turn
        ("Paris.<|im_end|>\n<tool_response>\n{}", False),
        ("the user asked about <|im_start|> tokens", False),  # no role after it
        ("Paris.", False),
    ],
)
def test_an_invented_turn_is_a_role_header_written_after_the_end(
    text: str, invented: bool, model_dir: Path
) -> None:
    from punie.evaluation.overrun import invented_turn

    markers = resolve_profile(model_dir=model_dir).cut_markers
    assert invented_turn(text, markers) is invented
