"""The grounded task generator on real code nobody here wrote: an installed package's source."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import anyio as anyio_package
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from scripted_agent import run_scripted, tool_returns

from punie.cli.data import generate as generate_command
from punie.data.generate.phrasing import HELD_OUT, TRAIN
from punie.data.generate.tasks import GeneratedTask, generate_tasks
from punie.data.harvest import HarvestReport, harvest_outcomes
from punie.evaluation.checks import check_call, check_executed, missing_facts, result_holds
from punie.records.conversation import read_conversations
from punie.records.task import TaskSpec, read_tasks, write_tasks
from punie.records.toolset import SYSTEM_PROMPT, code_tool_schemas, tool_parameters
from punie.runtime.tools import Workspace, grep, read_file, run_command, write_file

PACKAGE = Path(anyio_package.__file__).parent


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[GeneratedTask], float]:
    snapshots = tmp_path_factory.mktemp("snapshots")
    started = time.perf_counter()
    tasks, _ = generate_tasks(
        PACKAGE, limit=300, seed=7, snapshot_dir=snapshots, extended_kinds=True
    )
    return tasks, time.perf_counter() - started


def _agent_answer_to_unknown_tool(root: Path, name: str, arguments: dict, tmp: Path) -> str:
    """What the real agent hands the model (as the harvest records it) after a call to `name`."""

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not tool_returns(messages):
            return ModelResponse(parts=[ToolCallPart(name, arguments)])
        return ModelResponse(parts=[TextPart("done")])

    traces = tmp / f"unknown-{time.perf_counter_ns()}.jsonl"
    outcome = anyio_package.run(run_scripted, FunctionModel(model), "Where?", root, traces)
    [conversation] = harvest_outcomes([outcome], HarvestReport(traces=[str(traces)]))
    assert [m.training for m in conversation.messages if m.role == "assistant"] == [False, True]
    return next(m.content for m in conversation.messages if m.role == "tool")


def _fresh_result(root: Path, name: str, arguments: dict, scratch: Path) -> str:
    if name not in {"grep", "read_file", "run_command", "write_file"}:
        return _agent_answer_to_unknown_tool(root, name, arguments, scratch.parent)
    ws = Workspace(root)
    try:
        if name == "grep":
            return grep(ws, **arguments)
        if name == "read_file":
            return read_file(ws, **arguments)
        if name == "run_command":
            return run_command(ws, arguments["command"])
        scratch.mkdir(exist_ok=True)
        return write_file(Workspace(scratch), arguments["path"], arguments["content"])
    except Exception as exc:  # ToolError: the agent hands "Error: ..." to the model
        return f"Error: {exc}"


def test_hundreds_of_tasks_from_an_installed_package_in_seconds(generated) -> None:
    tasks, seconds = generated
    assert len(tasks) == 300
    assert seconds < 60, f"took {seconds:.1f} s"
    categories = {t.task.category for t in tasks}
    assert categories == {
        "single_tool",
        "multi_step",
        "direct_answer",
        "cannot_answer",
        "ask_back",
        "recovery",
    }
    assert len({t.task.id for t in tasks}) == len(tasks)
    assert len({t.task.question for t in tasks}) == len(tasks)
    print(f"\n300 tasks from anyio in {seconds:.2f} s")


def test_every_conversation_uses_the_agents_prompt_and_tools(generated) -> None:
    tasks, _ = generated
    schemas = code_tool_schemas()
    for t in tasks:
        c = t.conversation
        assert c.messages[0].content == SYSTEM_PROMPT
        assert c.tools == schemas
        assert c.meta.source == "generated" and c.meta.repository == "anyio"
        assert c.meta.license == "MIT"
        assert c.messages[-1].role == "assistant" and not c.messages[-1].tool_calls
        assert missing_facts(c.messages[-1].content, t.task.required_facts) == [], t.task.id
        calls = [call for m in c.messages for call in m.tool_calls]
        if t.task.expected_tool is None:
            assert not calls
        else:
            assert t.task.expected_tool in {call.name for call in calls}


def test_tool_results_equal_a_fresh_run_of_the_tool(generated, tmp_path: Path) -> None:
    tasks, _ = generated
    checked = 0
    for t in tasks[::3]:
        messages = t.conversation.messages
        for index, message in enumerate(messages):
            for call in message.tool_calls:
                recorded = messages[index + 1].content
                fresh = _fresh_result(Path(t.task.repo), call.name, call.arguments, tmp_path / "w")
                assert fresh == recorded, (t.task.id, call.name, call.arguments)
                checked += 1
    assert checked > 80


def test_definitions_are_really_where_the_answer_says(generated) -> None:
    tasks, _ = generated
    found = [t for t in tasks if t.task.kind in ("find_function", "find_class")]
    assert len(found) >= 10
    for t in found:
        path, line = t.task.required_facts
        source = (Path(t.task.repo) / path).read_text()
        name = t.task.question.split("`")[1].removesuffix("()") if "`" in t.task.question else None
        tree = ast.parse(source)
        at_line = {
            node.name
            for node in tree.body
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.lineno == int(line)
        }
        assert at_line, (t.task.id, path, line)
        if name is not None:
            assert name in at_line


def test_constant_values_and_class_methods_match_the_source(generated) -> None:
    """Read independently with `ast`: the constant's line binds the value the answer gives, and
    a class's public methods are exactly the ones the answer lists."""
    tasks, _ = generated
    constants = [t for t in tasks if t.task.kind == "constant_value"]
    methods = [t for t in tasks if t.task.kind == "find_then_read_methods"]
    assert len(constants) >= 2 and len(methods) >= 5
    for t in constants:
        [value] = t.task.required_facts
        [hit] = t.task.result_facts
        path, line, _ = hit.split(":", 2)
        [node] = ast.parse((Path(t.task.repo) / path).read_text().splitlines()[int(line) - 1]).body
        assert isinstance(node, ast.Assign | ast.AnnAssign)
        assert ast.literal_eval(node.value) == ast.literal_eval(value)
        assert f"`{value}`" in t.conversation.messages[-1].content
    for t in methods:
        [hit] = t.task.result_facts
        path, line, _ = hit.split(":", 2)
        tree = ast.parse((Path(t.task.repo) / path).read_text())
        [cls] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.lineno == int(line)]
        public = [
            n.name
            for n in cls.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and not n.name.startswith("_")
        ]
        assert t.task.required_facts == public
        assert all(f"`{m}`" in t.conversation.messages[-1].content for m in public)


def test_line_counts_and_folder_counts_match_the_file_system(generated) -> None:
    tasks, _ = generated
    counted = [t for t in tasks if t.task.kind == "line_count"]
    assert counted
    for t in counted:
        path = t.conversation.messages[2].tool_calls[0].arguments["command"].split()[-1]
        data = (Path(t.task.repo) / path).read_bytes()
        assert t.task.required_facts == [str(data.count(b"\n"))]


def test_the_source_tree_is_not_written_to(generated) -> None:
    tasks, _ = generated
    writes = [t for t in tasks if t.task.kind == "write_file"]
    assert writes
    for t in writes:
        assert not (PACKAGE / t.task.required_facts[0]).exists()
        assert not (Path(t.task.repo) / t.task.required_facts[0]).exists()


def test_recovery_tasks_start_with_a_real_error_then_fix_the_call(generated) -> None:
    """The failed first call is context, out of the loss; the fix and the answer are trained."""
    tasks, _ = generated
    recoveries = [t for t in tasks if t.task.category == "recovery"]
    from_mistakes = {
        "recovery_bad_regex",
        "recovery_directory",
        "recovery_unknown_tool",
        "recovery_bare_command",
    }
    assert {t.task.kind for t in recoveries} == {*from_mistakes, "recovery_near_miss_path"}
    failed_first = ("Error: ", '{"error":"Unknown tool name: ', "exit code: 127\n")
    for t in recoveries:
        if t.task.kind not in from_mistakes:
            continue
        messages = t.conversation.messages
        tool_results = [m.content for m in messages if m.role == "tool"]
        assert tool_results[0].startswith(failed_first), (t.task.kind, tool_results[0])
        assert not tool_results[-1].startswith(failed_first)
        turns = [m for m in messages if m.role == "assistant"]
        assert [m.training for m in turns] == [False, *([True] * (len(turns) - 1))]
        row = t.conversation.to_openai()
        assert [m.get("training", True) for m in row["messages"] if m["role"] == "assistant"] == [
            m.training for m in turns
        ]
    others = [m for t in tasks if t.task.kind not in from_mistakes for m in t.conversation.messages]
    assert all(m.training for m in others)


def test_a_near_miss_path_is_read_then_looked_for_then_answered(generated) -> None:
    """The read of the misspelt path is what the user asked (trained), its error is real, the
    folder listing shows the real file, and the classes the answer names are really in it."""
    tasks, _ = generated
    near = [t for t in tasks if t.task.kind == "recovery_near_miss_path"]
    assert len(near) >= 5
    for t in near:
        messages = t.conversation.messages
        calls = [m.tool_calls[0] for m in messages if m.tool_calls]
        assert [c.name for c in calls] == ["read_file", "run_command", "grep"]
        assert all(m.training for m in messages)
        missing, real = calls[0].arguments["path"], calls[2].arguments["path"]
        assert not (Path(t.task.repo) / missing).exists() and (Path(t.task.repo) / real).is_file()
        tree = ast.parse((Path(t.task.repo) / real).read_text())
        assert t.task.required_facts == [n.name for n in tree.body if isinstance(n, ast.ClassDef)]


def test_same_seed_same_tasks_other_seed_other_tasks(tmp_path: Path) -> None:
    def run(seed: int) -> list[str]:
        tasks, _ = generate_tasks(PACKAGE, limit=60, seed=seed, snapshot_dir=tmp_path)
        return [t.conversation.model_dump_json() + t.task.model_dump_json() for t in tasks]

    first = run(3)
    assert first == run(3)
    assert first != run(4)


def test_task_files_round_trip(generated, tmp_path: Path) -> None:
    tasks, _ = generated
    specs = [t.task for t in tasks]
    path = tmp_path / "tasks.jsonl"
    assert write_tasks(path, specs) == len(specs)
    assert list(read_tasks(path)) == specs
    path.write_text(path.read_text() + '{"id": "x"}\n')
    with pytest.raises(Exception, match=r"tasks.jsonl:301: not a TaskSpec"):
        list(read_tasks(path))


def test_generate_command_on_a_small_repository(repo: Path, tmp_path: Path) -> None:
    out, tasks_out = tmp_path / "conv.jsonl", tmp_path / "tasks.jsonl"
    generate_command(
        repo=repo,
        out=out,
        tasks_out=tasks_out,
        repo_name="shapes",
        limit=25,
        seed=0,
        snapshot_dir=tmp_path / "snap",
    )
    conversations = list(read_conversations(out))
    specs = list(read_tasks(tasks_out))
    assert len(conversations) == len(specs) > 5
    assert all(isinstance(s, TaskSpec) and s.repo == str(repo.resolve()) for s in specs)
    square = [s for s in specs if s.kind == "find_class" and "Square" in s.question]
    if square:
        assert square[0].required_facts == ["pkg/shapes.py", "6"]
    subclass = [s for s in specs if s.kind == "subclasses"]
    assert subclass and subclass[0].required_facts == ["Square"]
    assert json.loads(out.read_text().splitlines()[0])["meta"]["repository"] == "shapes"


def test_every_reference_call_is_right_by_the_strict_and_the_executed_verdict(generated) -> None:
    """The first call each conversation trains on (for a recovery from a mistake, the call after
    the error) is one its own task accepts, and its real result holds the task's result facts."""
    tasks, _ = generated
    schemas = tool_parameters()
    with_facts = 0
    for t in tasks:
        if t.task.expected_tool is None:
            continue
        call, result = next(
            (call, messages[index + 1].content)
            for messages in [t.conversation.messages]
            for index, m in enumerate(messages)
            if m.training
            for call in m.tool_calls
        )
        strict = check_call(
            call.name,
            call.arguments,
            expected_tool=t.task.expected_tool,
            expected_arguments=t.task.expected_arguments,
            optional_arguments=t.task.optional_arguments,
            schema=schemas[call.name],
        )
        assert strict.valid, (t.task.kind, call.arguments, strict.errors)
        assert result_holds(result, t.task.result_facts) == [], (t.task.kind, result)
        rejected = strict.__class__(False, ("forced",))
        executed = check_executed(
            call.name,
            call.arguments,
            result,
            strict=rejected,
            expected_tool=t.task.expected_tool,
            result_facts=t.task.result_facts,
            schema=schemas[call.name],
        )
        assert executed.valid == bool(t.task.result_facts), (t.task.kind, executed.errors)
        with_facts += bool(t.task.result_facts)
    assert with_facts > 100


def test_the_phrasing_set_words_every_question(tmp_path: Path) -> None:
    held_out, _ = generate_tasks(
        PACKAGE, limit=60, seed=7, snapshot_dir=tmp_path, phrasing="held_out"
    )
    train, _ = generate_tasks(PACKAGE, limit=60, seed=7, snapshot_dir=tmp_path)
    extended, _ = generate_tasks(
        PACKAGE, limit=60, seed=7, snapshot_dir=tmp_path, extended_kinds=True
    )
    held_out_asked, _ = generate_tasks(
        PACKAGE, limit=60, seed=7, snapshot_dir=tmp_path, phrasing="held_out", extended_kinds=True
    )
    assert all(HELD_OUT.matches(t.task.question) for t in held_out)
    extended_kinds = {
        "constant_value",
        "find_then_read_methods",
        "recovery_unknown_tool",
        "recovery_near_miss_path",
        "recovery_bare_command",
    }
    assert extended_kinds <= {t.task.kind for t in extended}
    assert not extended_kinds & {t.task.kind for t in train}
    # The held-out set never changes: the extended kinds are not held out even when asked for.
    assert [t.task.id for t in held_out_asked] == [t.task.id for t in held_out]
    assert not any(TRAIN.matches(t.task.question) for t in held_out)
    assert all(TRAIN.matches(t.task.question) for t in train)
    assert not any(HELD_OUT.matches(t.task.question) for t in train)
    with pytest.raises(Exception, match="unknown phrasing 'other'"):
        generate_tasks(PACKAGE, limit=1, snapshot_dir=tmp_path, phrasing="other")
