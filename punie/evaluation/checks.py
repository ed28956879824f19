"""The checks one run is scored by: a BFCL-style argument checker, tool selection, answer facts.

The argument checker follows the rules of the Berkeley Function Calling Leaderboard's AST
checker (`bfcl/eval_checker/ast_eval/ast_checker.py`, simple function case):

- the function name must match;
- every parameter the schema requires must be given;
- every given parameter must be one the task accepts (an expected or optional argument); a
  parameter the schema declares, given with exactly its schema default, counts as omitted;
- an expected parameter that is not given is wrong unless it is optional: `""` among its
  acceptable values (BFCL's marker) or its name among the task's optional arguments;
- types are strict: an `integer` must be an int (not `"3"`, not `3.0`, not `True`), a
  `number` may be an int or a float, a `string` a str, a `boolean` a bool, arrays and objects
  are checked element by element;
- a value must equal one of the acceptable values: strings compare after BFCL's
  standardisation (case, spaces and `,./-_*^` ignored, `'` read as `"`), except path
  parameters, which compare after path normalisation (`./a.py` == `a.py`, `pkg//a.py` ==
  `pkg/a.py`) and are otherwise exact; numbers compare by value.

The executed verdict (`check_executed`) judges values by what the call returned: the name and
the schema (required parameters, no unknown ones, strict types) are checked as above, and the
argument values are right exactly when the call's real result, run on the task's repository,
holds every one of the task's `result_facts`. So a grep narrowed with `glob` that still finds
the definition is right, and a grep whose pattern the task leaves free (`subclasses`, the
first step of a multi-step task) but which finds nothing is wrong, though the strict checker
accepts it. Tasks without result facts get the strict verdict.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OMITTED",
    "ArgumentCheck",
    "check_call",
    "check_executed",
    "fact_pattern",
    "facts_present",
    "missing_facts",
    "normalize_path",
    "result_holds",
    "schema_errors",
    "standardize_string",
]

OMITTED = ""
"""BFCL's marker, among a parameter's acceptable values, for "may be left out"."""

PATH_PARAMETERS: frozenset[str] = frozenset({"path", "file", "file_path", "filename", "directory"})

_BFCL_STRIP = re.compile(r"[ ,./\-_*^]")


@dataclass(frozen=True)
class ArgumentCheck:
    """The verdict on one tool call: valid, or the reasons it is not."""

    valid: bool
    errors: tuple[str, ...] = ()


def standardize_string(text: str) -> str:
    """BFCL's string standardisation: drop spaces and `,./-_*^`, lowercase, `'` as `"`."""
    return _BFCL_STRIP.sub("", text).lower().replace("'", '"')


def normalize_path(path: str) -> str:
    """A relative path in one spelling: `./a.py`, `a.py` and `pkg/../a.py` are all `a.py`."""
    text = path.strip().replace("\\", "/")
    if not text:
        return text
    normal = posixpath.normpath(text)
    return "." if normal in ("", ".") else normal.removeprefix("./")


def check_call(
    name: str,
    arguments: Mapping[str, Any],
    *,
    expected_tool: str,
    expected_arguments: Mapping[str, Sequence[Any]],
    optional_arguments: Iterable[str] | Mapping[str, Sequence[Any]] = (),
    schema: Mapping[str, Any] | None = None,
    path_parameters: frozenset[str] = PATH_PARAMETERS,
) -> ArgumentCheck:
    """Check one tool call against the task's expectation (the rules in the module docstring).

    `schema` is the tool's JSON schema (`parameters`); without it, types come from the
    acceptable values. `optional_arguments` lists names that may be given with any value or
    left out, or maps names to their acceptable values when given.
    """
    errors: list[str] = []
    if name != expected_tool:
        return ArgumentCheck(False, (f"wrong tool: called {name!r}, expected {expected_tool!r}",))
    properties: Mapping[str, Any] = (schema or {}).get("properties", {}) or {}
    required = set((schema or {}).get("required", []) or [])
    if isinstance(optional_arguments, Mapping):
        optional_values: dict[str, Sequence[Any]] = dict(optional_arguments)
        optional_names = set(optional_values)
    else:
        optional_values = {}
        optional_names = set(optional_arguments)

    for param in sorted(required):
        if param not in arguments:
            errors.append(f"missing required parameter {param!r}")

    for param, value in arguments.items():
        declared = properties.get(param)
        if schema is not None and declared is None:
            errors.append(f"unexpected parameter {param!r}: the tool has no such parameter")
            continue
        acceptable = expected_arguments.get(param, optional_values.get(param))
        if acceptable is None:
            if param in optional_names:
                continue
            if declared is not None and "default" in declared and declared["default"] == value:
                continue  # given exactly as the default: the same call as leaving it out
            errors.append(f"unexpected parameter {param!r}={value!r}")
            continue
        expected_type = _schema_type(declared) if declared is not None else None
        errors.extend(_check_value(param, value, acceptable, expected_type, path_parameters))

    for param, acceptable in expected_arguments.items():
        if param in arguments:
            continue
        if OMITTED in acceptable or param in optional_names:
            continue
        errors.append(f"missing parameter {param!r}")
    return ArgumentCheck(not errors, tuple(errors))


def schema_errors(arguments: Mapping[str, Any], schema: Mapping[str, Any] | None) -> list[str]:
    """What is wrong with a call's arguments by its schema alone: a required parameter left
    out, a parameter the tool does not have, a value of the wrong type."""
    if schema is None:
        return []
    properties: Mapping[str, Any] = schema.get("properties", {}) or {}
    errors = [
        f"missing required parameter {param!r}"
        for param in sorted(set(schema.get("required", []) or []))
        if param not in arguments
    ]
    for param, value in arguments.items():
        declared = properties.get(param)
        if declared is None:
            errors.append(f"unexpected parameter {param!r}: the tool has no such parameter")
            continue
        expected_type = _schema_type(declared)
        if expected_type is not None and not _type_ok(value, expected_type):
            errors.append(
                f"parameter {param!r}: {value!r} is "
                f"{_value_type(value) or type(value).__name__}, expected {expected_type}"
            )
    return errors


def result_holds(result: str | None, facts: Iterable[str]) -> list[str]:
    """The facts a tool's result does not hold, each exact and case-sensitive as a whole token
    (`whole_token`: a count `3` is not held by `13`); all when no result."""
    return [fact for fact in facts if result is None or not re.search(whole_token(fact), result)]


def check_executed(
    name: str,
    arguments: Mapping[str, Any],
    result: str | None,
    *,
    strict: ArgumentCheck,
    expected_tool: str,
    result_facts: Sequence[str],
    schema: Mapping[str, Any] | None = None,
) -> ArgumentCheck:
    """The executed verdict on a call whose real result is `result` (None: it did not run).

    Right when the tool and schema are right and the result holds every result fact, whatever
    the strict verdict; without result facts it is the strict verdict.
    """
    if not result_facts:
        return strict
    if name != expected_tool:
        return ArgumentCheck(False, (f"wrong tool: called {name!r}, expected {expected_tool!r}",))
    errors = schema_errors(arguments, schema)
    if result is None:
        errors.append("the call did not run, so it has no result")
    else:
        errors += [
            f"its result does not hold {fact!r}" for fact in result_holds(result, result_facts)
        ]
    return ArgumentCheck(not errors, tuple(errors))


def _schema_type(declared: Mapping[str, Any]) -> str | None:
    """The JSON-schema type of a parameter, looking through `anyOf: [T, null]`."""
    kind = declared.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if len(kinds) == 1 else None
    options = [o.get("type") for o in declared.get("anyOf", []) if o.get("type") != "null"]
    return options[0] if len(options) == 1 and isinstance(options[0], str) else None


# bool before int: a bool is an int to isinstance, never to JSON schema.
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def _value_type(value: Any) -> str | None:
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), None)


def _type_ok(value: Any, expected_type: str) -> bool:
    actual = _value_type(value)
    if expected_type == "number":
        return actual in ("integer", "number")
    return actual == expected_type


def _check_value(
    param: str,
    value: Any,
    acceptable: Sequence[Any],
    expected_type: str | None,
    path_parameters: frozenset[str],
) -> list[str]:
    candidates = [a for a in acceptable if not (isinstance(a, str) and a == OMITTED)]
    if expected_type is None:
        # No schema: the acceptable values say what type is right.
        types = {_value_type(a) for a in candidates}
        if types == {"integer", "number"}:
            types = {"number"}
        expected_type = types.pop() if len(types) == 1 else None
    if expected_type is not None and not _type_ok(value, expected_type):
        return [
            f"parameter {param!r}: {value!r} is {_value_type(value) or type(value).__name__}, "
            f"expected {expected_type}"
        ]
    if not candidates:
        return [f"parameter {param!r}: given, but the task expects it left out"]
    is_path = param in path_parameters
    if any(_equal(value, a, is_path) for a in candidates):
        return []
    return [f"parameter {param!r}: {value!r} is not one of {candidates!r}"]


def _equal(value: Any, expected: Any, is_path: bool) -> bool:
    if isinstance(value, str) and isinstance(expected, str):
        if is_path:
            return normalize_path(value) == normalize_path(expected)
        return standardize_string(value) == standardize_string(expected)
    if isinstance(value, bool) or isinstance(expected, bool):
        return isinstance(value, bool) and isinstance(expected, bool) and value == expected
    if isinstance(value, int | float) and isinstance(expected, int | float):
        return value == expected
    if isinstance(value, list) and isinstance(expected, list):
        return len(value) == len(expected) and all(
            _equal(v, e, is_path) for v, e in zip(value, expected, strict=True)
        )
    if isinstance(value, dict) and isinstance(expected, dict):
        return value.keys() == expected.keys() and all(
            _equal(value[k], expected[k], k in PATH_PARAMETERS) for k in value
        )
    return bool(value == expected)


_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w")


def _fold(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


def whole_token(text: str) -> str:
    """A regex for `text` as a whole token: where it starts or ends with a word character, no
    word character may touch it there, so `params` is not found inside `_merge_queryparams`,
    nor line `97` inside `197`, nor `unix.py` inside `_unix.py`."""
    left = r"(?<!\w)" if _WORD.match(text[:1]) else ""
    right = r"(?!\w)" if _WORD.match(text[-1:]) else ""
    return left + re.escape(text) + right


def fact_pattern(fact: str) -> re.Pattern[str]:
    """A folded fact (case- and whitespace-insensitive) as a whole token (`whole_token`)."""
    return re.compile(whole_token(_fold(fact)))


def missing_facts(answer: str | None, facts: Iterable[str]) -> list[str]:
    """The required facts not found in the answer, each as a whole token (`fact_pattern`),
    case- and whitespace-insensitive: echoing the name a question gives does not hold a fact
    that is part of it."""
    folded = _fold(answer or "")
    return [fact for fact in facts if not fact_pattern(fact).search(folded)]


def facts_present(answer: str | None, facts: Iterable[str]) -> bool:
    """Whether every required fact appears in the answer."""
    return not missing_facts(answer, facts)
