"""glaive converter on the real rows and on the re-shaped copies other projects made."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from punie.data.convert.glaive import convert_glaive, glaive_tools, split_turns
from punie.records.conversation import RowRejected
from tests.conftest import SHARED_DATA

GLAIVE_REAL = SHARED_DATA / "glaive_real_rows.jsonl"
GLAIVE_VARIANTS = SHARED_DATA / "glaive_variants.jsonl"


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _calls(conversation) -> list[tuple[str, dict]]:
    return [(c.name, c.arguments) for m in conversation.messages for c in m.tool_calls]


# A system prompt, the question, one call, its result and the answer.
ONE_CALL_ROLES = ["system", "user", "assistant", "tool", "assistant"]


def _roles(conversation) -> list[str]:
    return [m.role for m in conversation.messages]


# Outcome per real row, by its index in glaive_real_rows.jsonl, read from its fidelity/note:
# rows that lost their system prompt cannot offer a schema for their calls; copies that lost
# every newline cannot be split into turns; a system-only row has no chat.
EXPECTED_REJECTIONS = {
    2: "no_chat",
    4: "call_without_schema",
    5: "turns_not_separated",
    6: "turns_not_separated",
    9: "call_without_schema",
    **{i: "call_without_schema" for i in (22, 24, 25, 26, 28, 29, 30, 33, 35, 36, 37)},
}
EXPECTED_KINDS = {1: "direct_answer", 8: "refusal", 11: "refusal", 21: "direct_answer"}


def test_every_real_row_is_converted_or_rejected_with_its_reason() -> None:
    rows = _rows(GLAIVE_REAL)
    assert len(rows) == 38
    for index, row in enumerate(rows):
        if index in EXPECTED_REJECTIONS:
            with pytest.raises(RowRejected) as caught:
                convert_glaive(row, str(index))
            assert caught.value.reason == EXPECTED_REJECTIONS[index], (index, row["fidelity"])
        else:
            conversation = convert_glaive(row, str(index))
            assert conversation.messages[-1].role == "assistant"
            assert conversation.meta.license == "Apache-2.0"
            if index in EXPECTED_KINDS:
                assert conversation.meta.kind == EXPECTED_KINDS[index]
            # Text must never carry the end-of-turn token or a call left as text.
            for message in conversation.messages:
                assert "<|endoftext|>" not in message.content
                assert "<functioncall>" not in message.content


def test_verbatim_row_converts_to_exact_messages() -> None:
    row = _rows(GLAIVE_REAL)[0]
    conversation = convert_glaive(row, "0")
    assert conversation.meta.row_id == "25475"
    assert conversation.tool_names == ["detect_language"]
    assert [(m.role, m.content) for m in conversation.messages] == [
        (
            "system",
            "You are a helpful assistant with access to the following functions. "
            "Use them if required",
        ),
        (
            "user",
            "I have a text here and I am not sure what language it is. Can you help me "
            "identify it?",
        ),
        ("assistant", "Of course, I can help with that. Please provide me with the text."),
        ("user", 'Here it is - "Je suis un étudiant"'),
        ("assistant", ""),
        ("tool", '{"language": "French"}'),
        ("assistant", "The text you provided is in French."),
    ]
    call = conversation.messages[4].tool_calls[0]
    assert (call.id, call.name, call.arguments) == (
        "call_0",
        "detect_language",
        {"text": "Je suis un étudiant"},
    )
    tool = conversation.messages[5]
    assert (tool.tool_call_id, tool.name) == ("call_0", "detect_language")


@pytest.mark.parametrize(
    ("index", "calls"),
    [
        (3, [("search_books", {"query": "", "author": "George Orwell"})]),
        # apostrophe inside the single-quoted arguments
        (
            7,
            [
                (
                    "create_reminder",
                    {
                        "reminder_text": "Doctor's appointment",
                        "reminder_date": "2022-09-15",
                        "reminder_time": "10:00",
                    },
                )
            ],
        ),
        (12, [("generate_random_color", {})]),  # arguments written as a plain object
        (
            15,
            [
                (
                    "generate_invoice",
                    {
                        "customer_name": "John Doe",
                        "product_name": "Smartphone",
                        "quantity": 5,
                        "price": 200,
                    },
                )
            ],
        ),  # pretty-printed arguments
        (14, [("get_stock_price", {"symbol": "AAPL"}), ("get_stock_price", {"symbol": "MSFT"})]),
        (19, [("search_definition", {"query": "serendipity"})]),  # cut before the response
    ],
)
def test_exact_tool_calls(index: int, calls: list) -> None:
    assert _calls(convert_glaive(_rows(GLAIVE_REAL)[index], str(index))) == calls


def test_row_without_functions_uses_double_newline_turns() -> None:
    conversation = convert_glaive(_rows(GLAIVE_REAL)[1], "1")
    assert conversation.tools == []
    assert [(m.role, m.content) for m in conversation.messages[1:]] == [
        ("user", "Assign this occupation to the appropriate category\nNurse"),
        ("assistant", "Healthcare"),
        ("user", "What about an electrician?"),
        ("assistant", "Skilled Trades"),
    ]


def test_refusal_kept_as_when_not_to_call() -> None:
    conversation = convert_glaive(_rows(GLAIVE_REAL)[8], "8")
    assert conversation.meta.kind == "refusal"
    assert conversation.tool_names == ["calculate_discount"]
    assert conversation.messages[-1].content.startswith("I'm sorry, but I'm unable to assist")


def test_consecutive_assistant_turns_merge_with_prose_before_the_call() -> None:
    row = _rows(GLAIVE_REAL)[29]
    system = 'SYSTEM: You have functions -\n{"name": "calculate_loan_payment", "parameters": {}}\n'
    conversation = convert_glaive({"system": system, "chat": row["chat"]}, "29")
    first_call = conversation.messages[2]
    assert first_call.role == "assistant"
    assert first_call.content == "Of course, I can help you with that. Let me calculate it for you."
    assert [c.name for c in first_call.tool_calls] == ["calculate_loan_payment"]
    assert _roles(conversation) == [*ONE_CALL_ROLES, "user", "assistant"]


def test_row_ending_on_user_turn_is_trimmed_and_duplicates_deduped() -> None:
    spec = '{"name": "f", "description": "d", "parameters": {}}'
    chat = (
        'USER: hi\n\n\nASSISTANT: <functioncall> {"name": "f", "arguments": \'{}\'} '
        '<|endoftext|>\n\n\nFUNCTION RESPONSE: {"ok": true}\n\n\nASSISTANT: done <|endoftext|>'
        "\n\n\nUSER: and again?\n\n\n"
    )
    conversation = convert_glaive({"system": f"SYSTEM: x -\n{spec}\n\n{spec}\n", "chat": chat}, "r")
    assert conversation.tool_names == ["f"]
    assert [m.role for m in conversation.messages][-1] == "assistant"
    assert conversation.messages[-1].content == "done"


def test_single_newline_header_and_u0085_stay_inside_the_turn() -> None:
    chat = (
        "USER: line one\nASSISTANT: not a turn\x85still user\n\n\nASSISTANT: answer <|endoftext|>"
    )
    turns = split_turns(chat)
    assert turns == [
        ("USER", "line one\nASSISTANT: not a turn\x85still user"),
        ("ASSISTANT", "answer <|endoftext|>"),
    ]


def test_undeclared_function_and_bad_call_are_named() -> None:
    system = 'SYSTEM: x -\n{"name": "g", "parameters": {}}\n'
    call = 'USER: q\n\n\nASSISTANT: <functioncall> {"name": "f", "arguments": \'{}\'}'
    with pytest.raises(RowRejected) as caught:
        convert_glaive({"system": system, "chat": call}, "r")
    assert caught.value.reason == "undeclared_function"
    cut = 'USER: q\n\n\nASSISTANT: <functioncall> {"name": "g", "arguments": \'{"a": '
    with pytest.raises(RowRejected) as caught:
        convert_glaive({"system": system, "chat": cut}, "r")
    assert caught.value.reason == "functioncall_truncated"


def test_broken_function_schema_is_named() -> None:
    with pytest.raises(RowRejected) as caught:
        glaive_tools('SYSTEM: x -\n{"name": "g", "parameters": {\n')
    assert caught.value.reason == "bad_function_schema"


def _variant_record(row: dict):
    record = row["record"]
    if isinstance(record, dict) and "repr" in record:
        record = ast.literal_eval(record["repr"])  # the fixture stored a Python repr of the row
    return record


def test_every_variant_is_read() -> None:
    rows = _rows(GLAIVE_VARIANTS)
    kinds = {}
    for index, row in enumerate(rows):
        conversation = convert_glaive(_variant_record(row), str(index))
        kinds[index] = conversation.meta.kind
        assert conversation.messages[-1].role == "assistant"
    assert sum(kind == "tool_call" for kind in kinds.values()) == 26


def test_sharegpt_variant_calls_and_results() -> None:
    row = _rows(GLAIVE_VARIANTS)[9]
    conversation = convert_glaive(row["record"], "9")
    assert _calls(conversation) == [
        ("get_movie_details", {"movie_id": "12345"}),
        ("get_movie_details", {"movie_id": "67890"}),
    ]
    tools = [m for m in conversation.messages if m.role == "tool"]
    assert [t.tool_call_id for t in tools] == ["call_0", "call_1"]
    assert json.loads(tools[0].content)["title"] == "Inception"


@pytest.mark.parametrize("index", [34, 35])
def test_chatml_and_flat_prompt_variants(index: int) -> None:
    conversation = convert_glaive(_rows(GLAIVE_VARIANTS)[index]["record"], str(index))
    assert conversation.tool_names == ["create_contact"]
    assert _calls(conversation) == [
        ("create_contact", {"name": "John Doe", "email": "johndoe@example.com"})
    ]
    assert _roles(conversation) == ONE_CALL_ROLES


def test_openai_messages_variant() -> None:
    conversation = convert_glaive(_rows(GLAIVE_VARIANTS)[37]["record"], "37")
    assert conversation.meta.row_id == "glaive-v2-31-1"
    assert _calls(conversation) == [("generate_random_number", {"min": 1, "max": 100})]
