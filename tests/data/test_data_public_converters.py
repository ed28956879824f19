"""When2Call, Hermes and xLAM converters on real rows of each data set."""

from __future__ import annotations

import json

import pytest
from public_rows import HERMES_FLIGHT_SEARCH

from punie.data.convert.hermes import convert_hermes
from punie.data.convert.when2call import convert_when2call
from punie.data.convert.xlam import convert_xlam
from punie.records.conversation import RowRejected
from tests.conftest import SHARED_DATA

OTHER_ROWS = SHARED_DATA / "other_toolcall_rows.jsonl"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    if not OTHER_ROWS.exists():
        pytest.skip(f"{OTHER_ROWS} is not on this machine")
    return [json.loads(line)["record"] for line in OTHER_ROWS.read_text().splitlines()]


def _calls(conversation) -> list[tuple[str, dict]]:
    return [(c.name, c.arguments) for m in conversation.messages for c in m.tool_calls]


@pytest.mark.parametrize(
    ("index", "kind"),
    [
        (4, "cannot_answer"),
        (5, "cannot_answer"),
        (6, "cannot_answer"),
        (7, "ask_back"),
        (8, "ask_back"),
        (9, "ask_back"),
        (13, "cannot_answer"),
    ],
)
def test_when2call_behaviours_without_a_call(rows, index: int, kind: str) -> None:
    record = rows[index]
    conversation = convert_when2call(record, str(index))
    key = {"cannot_answer": "cannot_answer", "ask_back": "request_for_info"}[kind]
    assert conversation.meta.kind == kind
    assert conversation.meta.row_id == record["uuid"]
    assert conversation.meta.license == "CC-BY-4.0"
    assert [(m.role, m.content) for m in conversation.messages] == [
        ("user", record["question"].strip()),
        ("assistant", record["answers"][key]),
    ]
    assert _calls(conversation) == []


def test_when2call_tool_call_rows(rows) -> None:
    got = [_calls(convert_when2call(rows[i], str(i))) for i in (10, 11, 12)]
    assert got == [
        [("Music_3_PlayMedia", {"track": "Bohemian Rhapsody", "device": "Kitchen"})],
        [("search_web_tool", {"query": "weather in India"})],
        [("get_movies", {"city": "Noida"})],
    ]
    conversation = convert_when2call(rows[10], "10")
    assert conversation.tool_names == [
        "Music_3_PlayMedia",
        "Music_3_LookupMusic",
        "Weather_1_GetWeather",
    ]
    # BFCL's "type": "dict" becomes a JSON-schema object
    assert conversation.tools[0]["function"]["parameters"]["type"] == "object"


def test_when2call_direct_answer_label() -> None:
    record = {
        "uuid": "u",
        "question": "2+2?",
        "correct_answer": "direct",
        "tools": [],
        "answers": {"direct": "4", "tool_call": "", "request_for_info": "", "cannot_answer": ""},
    }
    assert convert_when2call(record, "0").meta.kind == "direct_answer"


def test_when2call_sft_and_preference_rows(rows) -> None:
    sft = convert_when2call(rows[14], "14")
    assert sft.meta.kind == "no_call"
    assert sft.tools[0]["function"]["parameters"]["properties"]["region"]["type"] == "string"
    pref = convert_when2call(rows[15], "15")
    assert pref.meta.kind == "ask_back"
    assert pref.messages[-1].content.startswith("To provide you with the company details")
    toolcall = {
        "tools": rows[15]["tools"],
        "messages": [*rows[15]["messages"], rows[15]["rejected_response"]],
    }
    assert _calls(convert_when2call(toolcall, "x")) == [
        ("get_company_by_domain", {"domain": "www.apple.com"})
    ]


def test_hermes_function_call_row(rows) -> None:
    conversation = convert_hermes(rows[0], "0")
    assert conversation.meta.row_id == "753d8365-0e54-43b1-9514-3f9b819fd31c"
    assert conversation.tool_names == ["search_flights"]
    assert "search_flights" not in conversation.messages[0].content  # the template renders tools
    assert _calls(conversation) == [(HERMES_FLIGHT_SEARCH.name, HERMES_FLIGHT_SEARCH.arguments)]
    tool = conversation.messages[3]
    assert tool.role == "tool" and tool.tool_call_id == "call_0"
    assert json.loads(tool.content)["flights"][0]["flight_number"] == "AA118"
    assert conversation.messages[-1].content.startswith("Here are the available flight options")


def test_hermes_card_row_with_name_inside_arguments_is_rejected(rows) -> None:
    with pytest.raises(RowRejected) as caught:
        convert_hermes(rows[1], "1")
    assert caught.value.reason == "tool_call_missing_name"


def test_hermes_json_mode_rows(rows) -> None:
    for index in (2, 3):
        conversation = convert_hermes(rows[index], str(index))
        assert conversation.meta.kind == "structured_output"
        assert conversation.tools == []
        json.loads(conversation.messages[-1].content)


def test_xlam_parallel_calls_and_license(rows) -> None:
    first = convert_xlam(rows[16], "16")
    assert first.meta.license == "CC-BY-NC-4.0"
    assert first.meta.row_id == "0"
    assert _calls(first) == [
        ("live_giveaways_by_type", {"type": "beta"}),
        ("live_giveaways_by_type", {"type": "game"}),
    ]
    params = first.tools[0]["function"]["parameters"]
    assert params == {
        "type": "object",
        "properties": {
            "type": {
                "description": "The type of giveaways to retrieve (e.g., game, loot, beta).",
                "type": "string",
                "default": "game",
            }
        },
        "required": [],
    }
    second = convert_xlam(rows[17], "17")
    assert _calls(second) == [
        ("split_list", {"lst": [10, 20, 30, 40, 50, 60], "chunk_size": 4}),
        ("binary_search", {"arr": [10, 20, 30, 40, 50, 60], "target": 30}),
    ]
    assert second.tools[1]["function"]["parameters"]["required"] == ["arr", "target"]
    assert second.tools[1]["function"]["parameters"]["properties"]["arr"]["type"] == "array"
