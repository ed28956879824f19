"""The BFCL-style argument checker, on the cases of BFCL's AST checker rules, and fact checks."""

from __future__ import annotations

import pytest

from punie.evaluation.checks import (
    check_call,
    missing_facts,
    normalize_path,
    standardize_string,
)
from punie.records.toolset import tool_parameters

SCHEMAS = tool_parameters()


def _check(tool, arguments, expected, optional=()):
    """Check a call of one of the code tools, expecting that tool, against its schema."""
    return check_call(
        tool,
        arguments,
        expected_tool=tool,
        expected_arguments=expected,
        optional_arguments=optional,
        schema=SCHEMAS[tool],
    )


def _read(arguments, expected, optional=()):
    return _check("read_file", arguments, expected, optional)


def _grep(arguments, expected):
    return _check("grep", arguments, expected)


def test_wrong_function_name_is_the_first_and_only_error() -> None:
    verdict = check_call(
        "grep", {"pattern": "x"}, expected_tool="read_file", expected_arguments={}, schema=None
    )
    assert not verdict.valid
    assert verdict.errors == ("wrong tool: called 'grep', expected 'read_file'",)


def test_integer_given_as_a_string_is_a_type_error() -> None:
    verdict = _read({"path": "a.py", "start_line": "3"}, {"path": ["a.py"], "start_line": [3]})
    assert not verdict.valid
    assert verdict.errors == ("parameter 'start_line': '3' is string, expected integer",)


def test_integer_given_as_a_float_or_bool_is_a_type_error() -> None:
    assert not _read(
        {"path": "a.py", "start_line": 3.0}, {"path": ["a.py"], "start_line": [3]}
    ).valid
    assert not _read(
        {"path": "a.py", "start_line": True}, {"path": ["a.py"], "start_line": [1]}
    ).valid


def test_an_int_is_accepted_for_a_number_parameter() -> None:
    schema = {"properties": {"x": {"type": "number"}}, "required": ["x"]}
    ok = check_call(
        "f", {"x": 2}, expected_tool="f", expected_arguments={"x": [2.0]}, schema=schema
    )
    assert ok.valid
    wrong = check_call(
        "f", {"x": 2.5}, expected_tool="f", expected_arguments={"x": [2.0]}, schema=schema
    )
    assert not wrong.valid


def test_paths_are_normalised() -> None:
    for given in ("./pkg/a.py", "pkg/a.py", "pkg//a.py", "pkg/sub/../a.py"):
        assert _read({"path": given}, {"path": ["pkg/a.py"]}).valid, given
    assert not _read({"path": "pkga.py"}, {"path": ["pkg/a.py"]}).valid
    assert not _read({"path": "pkg/b.py"}, {"path": ["pkg/a.py"]}).valid
    assert normalize_path("./") == "."


def test_strings_compare_after_bfcl_standardisation() -> None:
    assert standardize_string("San Francisco, CA") == standardize_string("san francisco ca")
    assert standardize_string("it's") == 'it"s'
    verdict = _grep({"pattern": "Class Shelf"}, {"pattern": ["class Shelf"]})
    assert verdict.valid
    other = _grep({"pattern": "class Book"}, {"pattern": ["class Shelf"]})
    assert not other.valid


def test_any_of_the_acceptable_values_passes() -> None:
    expected = {"pattern": ["class Shelf", "Shelf"]}
    for given in ("Shelf", "class Shelf"):
        assert _grep({"pattern": given}, expected).valid


def test_missing_required_parameter() -> None:
    verdict = _read({}, {"path": ["a.py"]})
    assert not verdict.valid
    assert "missing required parameter 'path'" in verdict.errors


def test_optional_parameter_marked_with_empty_string_may_be_left_out() -> None:
    assert _read({"path": "a.py"}, {"path": ["a.py"], "start_line": ["", 3]}).valid
    assert _read({"path": "a.py", "start_line": 3}, {"path": ["a.py"], "start_line": ["", 3]}).valid
    assert not _read(
        {"path": "a.py", "start_line": 4}, {"path": ["a.py"], "start_line": ["", 3]}
    ).valid


def test_optional_argument_names_may_be_left_out_but_must_match_when_given() -> None:
    expected = {"path": ["a.py"], "start_line": [3]}
    assert _read({"path": "a.py"}, expected, optional=["start_line"]).valid
    assert _read({"path": "a.py", "start_line": 3}, expected, optional=["start_line"]).valid
    assert not _read({"path": "a.py", "start_line": 5}, expected, optional=["start_line"]).valid
    # An expected argument that is not optional must be given.
    assert _read({"path": "a.py"}, expected).errors == ("missing parameter 'start_line'",)


def test_unexpected_parameters_are_wrong() -> None:
    verdict = _read({"path": "a.py", "mode": "r"}, {"path": ["a.py"]})
    assert verdict.errors == ("unexpected parameter 'mode': the tool has no such parameter",)
    # Declared by the tool, but not one the task accepts: BFCL's "unexpected param".
    verdict = _read({"path": "a.py", "end_line": 9}, {"path": ["a.py"]})
    assert verdict.errors == ("unexpected parameter 'end_line'=9",)


def test_a_declared_parameter_given_with_its_default_counts_as_omitted() -> None:
    verdict = _grep({"pattern": "Shelf", "path": "."}, {"pattern": ["Shelf"]})
    assert verdict.valid


def test_without_a_schema_types_come_from_the_acceptable_values() -> None:
    verdict = check_call("f", {"n": "3"}, expected_tool="f", expected_arguments={"n": [3]})
    assert verdict.errors == ("parameter 'n': '3' is string, expected integer",)
    assert check_call("f", {"n": 3}, expected_tool="f", expected_arguments={"n": [3]}).valid


@pytest.mark.parametrize(
    ("given", "valid"),
    [([1, 2], True), ([2, 1], False), ([1, "2"], False), ([1], False)],
)
def test_lists_compare_element_by_element(given: list, valid: bool) -> None:
    schema = {"properties": {"xs": {"type": "array"}}, "required": ["xs"]}
    verdict = check_call(
        "f", {"xs": given}, expected_tool="f", expected_arguments={"xs": [[1, 2]]}, schema=schema
    )
    assert verdict.valid is valid


def test_facts_are_found_case_and_whitespace_insensitively() -> None:
    answer = "Shelf  is defined in\nlibrary/shelf.py and ImPORTS Book."
    assert missing_facts(answer, ["library/shelf.py", "imports book", "shelf is defined"]) == []
    assert missing_facts(answer, ["library/book.py", "Shelf"]) == ["library/book.py"]
    assert missing_facts(None, ["x"]) == ["x"]


def test_a_fact_counts_only_as_a_whole_token_not_inside_a_name_the_question_gave() -> None:
    """Echoing `_merge_queryparams` does not answer "its parameter is `params`"; line 97 is not
    line 197; `unix.py` is not `_unix.py`; edges that are not word characters need no fence."""
    echo = "`BaseClient._merge_queryparams` takes 1 parameter: `path`."
    assert missing_facts(echo, ["params"]) == ["params"]
    assert missing_facts("It takes `self` and `params`.", ["params"]) == []
    assert missing_facts("defined at line 197", ["97"]) == ["97"]
    assert missing_facts("defined at line 97.", ["97"]) == []
    assert missing_facts("see `_unix.py`", ["unix.py"]) == ["unix.py"]
    assert missing_facts("see `pkg/unix.py`", ["unix.py"]) == []
    assert missing_facts("grep found `a.py:3: class X(`", ["a.py:3: ", "class X("]) == []
