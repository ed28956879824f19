"""The text tool-call parser on the forms small models write and on real public dataset rows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from public_rows import HERMES_FLIGHT_SEARCH

from punie.records.profile import known_families
from punie.records.toolcall_text import ParsedReply, TextToolCall, cut_at_markers, parse_tool_calls

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
GLAIVE_ROWS = SHARED_DATA / "glaive_real_rows.jsonl"
GLAIVE_VARIANTS = SHARED_DATA / "glaive_variants.jsonl"
OTHER_ROWS = SHARED_DATA / "other_toolcall_rows.jsonl"

needs_shared = pytest.mark.skipif(
    not GLAIVE_ROWS.is_file(), reason="../shared/data (real public rows) is not present"
)


def _assert_refused(text: str, reason: str) -> None:
    """No call, the failure named, and the text kept as the reply."""
    parsed = parse_tool_calls(text)
    assert parsed.calls == ()
    assert parsed.errors == (reason,)
    assert parsed.content == text.strip()


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _assistant_turns(chat: str) -> list[str]:
    """A test-side splitter: the text of every ASSISTANT turn of a glaive chat."""
    parts = re.split(r"(?:^|\s)(ASSISTANT|USER|FUNCTION RESPONSE):\s", chat)
    return [parts[i + 1] for i in range(1, len(parts) - 1, 2) if parts[i] == "ASSISTANT"]


def _one(text: str) -> TextToolCall:
    parsed = parse_tool_calls(text)
    assert parsed.errors == ()
    assert len(parsed.calls) == 1, parsed
    return parsed.calls[0]


# --- <tool_call> (Qwen / Hermes) ---------------------------------------------------------


def test_tool_call_tag_with_prose_before() -> None:
    text = (
        "I'll look at the file first.\n<tool_call>\n"
        '{"name": "read_file", "arguments": {"path": "pkg/shapes.py", "start": 1}}\n</tool_call>'
    )
    assert parse_tool_calls(text) == ParsedReply(
        content="I'll look at the file first.",
        calls=(TextToolCall("read_file", {"path": "pkg/shapes.py", "start": 1}),),
        errors=(),
    )


def test_several_tool_calls_in_a_row_and_an_unclosed_last_one() -> None:
    text = (
        '<tool_call>{"name": "grep", "arguments": {"pattern": "class \\\\w+"}}</tool_call>\n'
        '<tool_call>{"name": "read_file", "parameters": {"path": "a.py"}}</tool_call>\n'
        '<tool_call>\n{"name": "run_command", "arguments": {"command": "ls </tool_call>"}}\n'
    )
    parsed = parse_tool_calls(text)
    assert parsed.calls == (
        TextToolCall("grep", {"pattern": "class \\w+"}),
        TextToolCall("read_file", {"path": "a.py"}),
        TextToolCall("run_command", {"command": "ls </tool_call>"}),
    )
    assert parsed.content == ""
    assert parsed.errors == ()


def test_tool_call_arguments_as_json_string_and_absent() -> None:
    text = (
        '<tool_call>{"name": "grep", "arguments": "{\\"pattern\\": \\"x\\"}"}</tool_call>'
        '<tool_call>{"name": "list_files"}</tool_call>'
        '<tool_call>{"name": "list_files", "arguments": null}}</tool_call>'
    )
    parsed = parse_tool_calls(text)
    assert parsed.calls == (
        TextToolCall("grep", {"pattern": "x"}),
        TextToolCall("list_files", {}),
        TextToolCall("list_files", {}),
    )
    assert parsed.errors == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('<tool_call>{"arguments": {"path": "a"}}</tool_call>', "tool_call_missing_name"),
        ('<tool_call>{"name": "", "arguments": {}}</tool_call>', "tool_call_missing_name"),
        ("<tool_call>read the file please</tool_call>", "tool_call_not_json"),
        ('<tool_call>{"name": "read_file", "arguments": {"path": "a.', "tool_call_truncated"),
        (
            '<tool_call>{"name": "x", "arguments": [1, 2]}</tool_call>',
            "tool_call_arguments_not_object",
        ),
        (
            '<tool_call>{"name": "x", "arguments": {"n": Infinity}}</tool_call>',
            "tool_call_not_json",
        ),
        (
            '<tool_call>{"name": "x", "arguments": "not json"}</tool_call>',
            "tool_call_arguments_not_json",
        ),
    ],
)
def test_tool_call_failures_are_named_and_text_stays(text: str, reason: str) -> None:
    _assert_refused(text, reason)


# --- ```json fences (the Qwen2.5-Coder failure) -------------------------------------------


def test_json_fence_call_is_a_call() -> None:
    text = (
        "To answer, I need to search the code.\n\n```json\n"
        '{\n  "name": "grep",\n  "arguments": {"pattern": "def area", "path": "pkg"}\n}\n```\n'
    )
    assert parse_tool_calls(text) == ParsedReply(
        content="To answer, I need to search the code.",
        calls=(TextToolCall("grep", {"pattern": "def area", "path": "pkg"}),),
        errors=(),
    )


def test_bare_fence_with_a_list_of_calls() -> None:
    text = (
        '```\n[{"name": "read_file", "arguments": {"path": "a.py"}}, '
        '{"name": "read_file", "arguments": {"path": "b.py"}}]\n```'
    )
    assert parse_tool_calls(text).calls == (
        TextToolCall("read_file", {"path": "a.py"}),
        TextToolCall("read_file", {"path": "b.py"}),
    )


def test_fences_that_are_not_calls_stay_content() -> None:
    text = (
        'Here is the config:\n```json\n{"name": "punie", "version": 1}\n```\n'
        "and the code:\n```python\nprint('```json')\n```\nDone."
    )
    assert parse_tool_calls(text) == ParsedReply(content=text.strip(), calls=(), errors=())


def test_python_fence_does_not_hide_a_later_json_call() -> None:
    text = (
        "```python\nx = 1\n```\nNow running it:\n```json\n"
        '{"name": "run_command", "arguments": {"command": "python x.py"}}\n```'
    )
    parsed = parse_tool_calls(text)
    assert parsed.calls == (TextToolCall("run_command", {"command": "python x.py"}),)
    assert parsed.content == "```python\nx = 1\n```\nNow running it:"


def test_broken_json_fence_call_is_an_error() -> None:
    text = '```json\n{"name": "grep", "arguments": {"pattern": "a",}}\n```'
    assert parse_tool_calls(text).errors == ("fence_not_json",)


def test_whole_reply_json_object_is_a_call() -> None:
    assert _one('  {"name": "grep", "arguments": {"pattern": "TODO"}}\n') == TextToolCall(
        "grep", {"pattern": "TODO"}
    )


def test_prose_without_call_is_content() -> None:
    text = 'The Square class inherits from Shape; its area is side**2 ({"name": "x"} is a dict).'
    assert parse_tool_calls(text) == ParsedReply(content=text, calls=(), errors=())


# --- glaive <functioncall>, every quirk -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "call"),
    [
        (
            '<functioncall> {"name": "create_reminder", "arguments": \'{"reminder_text": '
            '"Doctor\'s appointment", "when": "10:00"}\'} <|endoftext|>',
            TextToolCall(
                "create_reminder", {"reminder_text": "Doctor's appointment", "when": "10:00"}
            ),
        ),
        (
            '<functioncall> {"name": "note", "arguments": \'{\n  "text": "it\'s\nfine\'}",\n'
            '  "n": 2\n}\'} <|endoftext|>',
            TextToolCall("note", {"text": "it's\nfine'}", "n": 2}),
        ),
        (
            '<functioncall> {"name": "say", "arguments": \'{"text": "don\\\'t"}\'} <|endoftext|>',
            TextToolCall("say", {"text": "don't"}),
        ),
        (
            '<functioncall> {"name": "get_color", "arguments": {}} <|endoftext|>',
            TextToolCall("get_color", {}),
        ),
        (
            '<functioncall> {"name": "get_color", "arguments": null} <|endoftext|>',
            TextToolCall("get_color", {}),
        ),
        (
            '<functioncall> {"name": "search", "arguments": {"q": "a"}} <|endoftext|>',
            TextToolCall("search", {"q": "a"}),
        ),
        (
            '<functioncall> {"name": "search", "parameters": \'{"q": "a"}\'} <|endoftext|>',
            TextToolCall("search", {"q": "a"}),
        ),
        (
            '<functioncall> {"name": "search", "arguments": \'{"q": "a"}\'}} <|endoftext|>',
            TextToolCall("search", {"q": "a"}),
        ),
        (
            '<functioncall> {"name": "search", "arguments": \'{}\'}',
            TextToolCall("search", {}),
        ),
    ],
)
def test_functioncall_quirks(text: str, call: TextToolCall) -> None:
    parsed = parse_tool_calls(text)
    assert parsed == ParsedReply(content="", calls=(call,), errors=())


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            '<functioncall> {"name": "calc", "arguments": \'{"principal": 50000, "rate',
            "functioncall_truncated",
        ),
        ('<functioncall> {"name": "calc", "argu', "functioncall_truncated"),
        (
            '<functioncall> {"name": "calc", "arguments": \'[1, 2]\'} <|endoftext|>',
            "functioncall_arguments_not_object",
        ),
        (
            '<functioncall> {"name": "calc", "arguments": \'{"x": Infinity}\'} <|endoftext|>',
            "functioncall_arguments_not_json",
        ),
        (
            '<functioncall> {"name": "calc", "arguments": {"x": 1e999}} <|endoftext|>',
            "functioncall_arguments_not_json",
        ),
        (
            '<functioncall> {"name": "calc", "arguments": \'<arguments here>\'} <|endoftext|>',
            "functioncall_arguments_not_json",
        ),
        ("<functioncall> {\"arguments\": '{}'} <|endoftext|>", "functioncall_missing_name"),
    ],
)
def test_functioncall_failures_are_named(text: str, reason: str) -> None:
    _assert_refused(text, reason)


def test_functioncall_with_prose_before_keeps_prose_and_drops_endoftext() -> None:
    text = (
        'Sure, let me calculate that for you. <functioncall> {"name": "calculate_tip", '
        '"arguments": \'{"bill_amount": 50, "tip_percentage": 15}\'} <|endoftext|>'
    )
    assert parse_tool_calls(text) == ParsedReply(
        content="Sure, let me calculate that for you.",
        calls=(TextToolCall("calculate_tip", {"bill_amount": 50, "tip_percentage": 15}),),
        errors=(),
    )


@needs_shared
@pytest.mark.parametrize(
    ("row", "turn", "call"),
    [
        (
            0,
            0,
            TextToolCall("detect_language", {"text": "Je suis un étudiant"}),
        ),
        (
            7,
            0,
            TextToolCall(
                "create_reminder",
                {
                    "reminder_text": "Doctor's appointment",
                    "reminder_date": "2022-09-15",
                    "reminder_time": "10:00",
                },
            ),
        ),
        (12, 0, TextToolCall("generate_random_color", {})),
        (
            15,
            0,
            TextToolCall(
                "generate_invoice",
                {
                    "customer_name": "John Doe",
                    "product_name": "Smartphone",
                    "quantity": 5,
                    "price": 200,
                },
            ),
        ),
        (
            17,
            0,
            TextToolCall("find_nearest_gas_station", {"latitude": 40.7128, "longitude": -74.006}),
        ),
        (20, 1, TextToolCall("calculate_factorial", {"number": 7})),
    ],
)
def test_real_glaive_rows_exact_calls(row: int, turn: int, call: TextToolCall) -> None:
    chat = _rows(GLAIVE_ROWS)[row]["chat"]
    call_turns = [t for t in _assistant_turns(chat) if "<functioncall>" in t]
    assert _one(call_turns[turn]) == call


@needs_shared
def test_every_real_glaive_assistant_turn_parses_exactly() -> None:
    """Every ASSISTANT turn of the 38 real rows: calls equal an independent full-match oracle."""
    oracle = re.compile(
        r'(?P<prose>.*?)<functioncall> \{"name": "(?P<name>[^"]+)", "arguments": '
        r"(?:'(?P<quoted>.*)'|(?P<plain>\{.*\}))\}\s*<\|endoftext\|>\s*",
        re.DOTALL,
    )
    calls = prose_turns = 0
    for row in _rows(GLAIVE_ROWS):
        for turn in _assistant_turns(row["chat"] or ""):
            parsed = parse_tool_calls(turn)
            if "<functioncall>" not in turn:
                assert parsed.calls == () and parsed.errors == ()
                prose_turns += 1
                continue
            expected = oracle.fullmatch(turn.strip())
            assert expected is not None, turn
            arguments = json.loads(expected["quoted"] or expected["plain"])
            assert parsed == ParsedReply(
                content=expected["prose"].strip(),
                calls=(TextToolCall(expected["name"], arguments),),
                errors=(),
            )
            calls += 1
    assert calls == 31
    assert prose_turns > 40


@needs_shared
def test_all_rows_and_variants_sweep_without_crash() -> None:
    """Whole chats, systems and variant records: no exception, only named reasons."""
    reason = re.compile(r"(tool_call|toolcall_list|fence|functioncall)_[a-z_]+")
    texts = [r["chat"] or "" for r in _rows(GLAIVE_ROWS)]
    texts += [r["system"] or "" for r in _rows(GLAIVE_ROWS)]
    texts += [json.dumps(r["record"]) for r in _rows(GLAIVE_VARIANTS)]
    for text in texts:
        parsed = parse_tool_calls(text)
        assert all(reason.fullmatch(e) for e in parsed.errors), parsed.errors
        assert all(isinstance(c.arguments, dict) and c.name for c in parsed.calls)


@needs_shared
def test_sharegpt_function_call_values_parse_as_whole_reply_calls() -> None:
    count = 0
    for row in _rows(GLAIVE_VARIANTS):
        record = row["record"]
        messages = record.get("conversations") or [] if isinstance(record, dict) else record
        for message in messages:
            if message.get("from") == "function_call":
                expected = json.loads(message["value"])
                assert _one(message["value"]) == TextToolCall(
                    expected["name"], expected["arguments"]
                )
                count += 1
    assert count >= 30


@needs_shared
def test_hermes_and_when2call_rows() -> None:
    rows = _rows(OTHER_ROWS)
    hermes = [m["value"] for m in rows[0]["record"]["conversations"] if m["from"] == "gpt"]
    assert _one(hermes[0]) == HERMES_FLIGHT_SEARCH
    # This real Hermes row put "name" inside "arguments": nothing to call, and it says so.
    broken = [m["value"] for m in rows[1]["record"]["conversations"] if m["from"] == "gpt"]
    assert parse_tool_calls(broken[0]).errors == ("tool_call_missing_name",)
    when2call = rows[15]["record"]["rejected_response"]["content"]
    assert _one(when2call) == TextToolCall("get_company_by_domain", {"domain": "www.apple.com"})


# --- cutting at end-of-turn markers and leaked role headers -------------------------------


def test_cut_the_runaway_reply_from_the_issue() -> None:
    reply = (
        "The `Square` class inherits from `Shape`."
        + "!<|im_end|>" * 300
        + "<|im_start|>user\nCan you book a flight for me from New York to Los Angeles?"
    )
    markers = known_families()["chatml"].cut_markers
    assert cut_at_markers(reply, markers) == ("The `Square` class inherits from `Shape`.!", True)


def test_cut_at_the_earliest_marker_and_leaked_plain_header() -> None:
    markers = known_families()["chatml"].cut_markers
    text = "It returns 4.\nUSER: Thanks! Now what about <|im_start|>"
    assert cut_at_markers(text, markers) == ("It returns 4.", True)
    assert cut_at_markers("Nothing to cut.\n", markers) == ("Nothing to cut.\n", False)
    assert cut_at_markers("<|eot_id|>", known_families()["llama3"].cut_markers) == ("", True)
    assert cut_at_markers("abc", ["", "zzz"]) == ("abc", False)
