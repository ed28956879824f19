"""The question wordings, in two sets kept apart: `train` (training and validation data) and
`held_out` (the eval's held-out tasks), so the eval measures more than template matching.

Every builder asks through a `Phrasebook` by key; both sets hold the same keys. A held-out
wording never appears in the train set and no template of one set matches a question of the
other (`tests/data/test_splits.py` checks both on generated tasks).
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from punie.errors import DataError

PhrasingName = Literal["train", "held_out"]


@dataclass(frozen=True)
class Phrasebook:
    """One set of question templates per kind, and the vague requests to ask back on."""

    name: PhrasingName
    questions: Mapping[str, tuple[str, ...]]
    vague: tuple[tuple[str, str], ...]
    """(request, the clarifying question that answers it)."""

    def ask(self, rng: random.Random, key: str, **fields: object) -> str:
        """A seeded pick among the key's templates, filled in."""
        options = self.questions[key]
        return options[rng.randrange(len(options))].format(**fields)

    def patterns(self) -> list[re.Pattern[str]]:
        """Every template (and vague request) as a regular expression matching its questions."""
        templates = [t for options in self.questions.values() for t in options]
        return [template_pattern(t) for t in templates] + [
            re.compile(re.escape(request)) for request, _ in self.vague
        ]

    def matches(self, question: str) -> bool:
        """Whether `question` is worded by one of this set's templates."""
        return any(p.fullmatch(question) for p in self.patterns())


def template_pattern(template: str) -> re.Pattern[str]:
    """A template as a regular expression: its text literally, each `{field}` as `.+?`."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(".+?")
    return re.compile("".join(parts), re.DOTALL)


TRAIN = Phrasebook(
    name="train",
    questions={
        "find_function": (
            "Where is the function `{name}` defined?",
            "In which file and on which line is `{name}()` defined?",
            "Find the definition of the function {name}.",
            "Which file defines `{name}`?",
            "where's {name} defined?",
            "Can you find where `{name}` is implemented? I need the file and the line.",
            "Search the repo for the definition of `{name}()`.",
            "Show me where def {name} is.",
            "I need to edit `{name}`. Which file is it in, and at what line does it start?",
            "Find function {name} please.",
        ),
        "find_class": (
            "Where is the class `{name}` defined?",
            "Which file defines class {name}, and on what line?",
            "Find where `{name}` is declared.",
            "where is class {name}?",
            "Can you find the class `{name}` for me? File and line.",
            "Search for the definition of class {name}.",
            "In which module does the class `{name}` live?",
            "I want to read class `{name}`: where does it start?",
        ),
        "subclasses": (
            "Which classes inherit from `{base}`?",
            "List the subclasses of {base} in this repository.",
            "What classes derive from `{base}`?",
            "Find all classes that extend `{base}`.",
            "which classes subclass {base}?",
            "Show me every class whose base is `{base}`.",
            "What inherits from {base} here? Give me the classes and where they are.",
        ),
        "module_imports": (
            "What does `{path}` import?",
            "Which modules are imported in {path}?",
            "List the imports of `{path}`.",
            "what modules does {path} depend on?",
            "Show me the import statements in `{path}`.",
            "Which packages and modules does `{path}` use? Check its imports.",
        ),
        "files_mentioning": (
            "Which files mention `{word}`?",
            "In which files does the string {word} appear?",
            "Find every file that contains `{word}`.",
            "grep for {word} and list the files.",
            "Where is `{word}` used? List the files.",
            "Search all files for the word `{word}`: which ones have it?",
        ),
        "read_line": (
            "What is on line {line} of `{path}`?",
            "Show me line {line} of {path}.",
            "read line {line} of {path}",
            "Open `{path}` and show me line {line}.",
            "What does line {line} in `{path}` contain?",
        ),
        "read_range": (
            "Show me lines {start}-{end} of `{path}`.",
            "What do lines {start} to {end} of {path} say?",
            "read {path} lines {start}-{end}",
            "Open `{path}` and show me lines {start} to {end}.",
            "Can I see lines {start}-{end} of {path}?",
        ),
        "parameters": (
            "What parameters does `{label}` in `{path}` take?",
            "Which arguments does {label} (defined in {path} at line {line}) accept?",
            "`{label}` is in `{path}` at line {line}. What are its parameters?",
            "Read the signature of {label} in {path} and list the parameters.",
            "what args does {label} take? it's in {path}, line {line}",
        ),
        "find_then_parameters": (
            "What arguments does the function `{name}` take?",
            "What is the signature of `{name}`? List its parameters.",
            "Find `{name}`, read its definition and list the parameters.",
            "which parameters does {name} have?",
            "Search for the function {name} and then read it: what are its arguments?",
            "I want to call `{name}()`. Which arguments does it expect?",
        ),
        "find_then_docstring": (
            "What is the class `{name}` for, according to its docstring?",
            "What does the docstring of {name} say?",
            "Find class `{name}`, read it and tell me its docstring.",
            "what's the purpose of class {name}? check its docstring",
            "Search for the class {name} and read its definition: what does the docstring say?",
            "Read the docstring of `{name}` and summarise what the class does.",
        ),
        "find_then_methods": (
            "Which public methods does the class `{name}` have?",
            "Find class {name}, read it and list its public methods.",
            "List the methods of `{name}` (skip the private ones).",
            "what can I call on a {name}? list its public methods",
            "Search for class `{name}`, then read it: which public methods does it define?",
            "I need an overview of `{name}`: find it and name its public methods.",
        ),
        "constant_value": (
            "What is the value of `{name}`?",
            "Which value is the constant {name} set to?",
            "Find where `{name}` is set and tell me its value.",
            "what's {name} set to in this repo?",
            "Look for the constant `{name}`: what does it hold?",
            "Tell me the value of the module constant {name}.",
        ),
        "line_count": (
            "How many lines does `{path}` have?",
            "Count the lines of {path}.",
            "how long is `{path}`? number of lines please",
            "What is the line count of {path}?",
            "Use wc to count the lines in `{path}`.",
        ),
        "count_python_root": (
            "How many Python files does this repository have (in all folders)?",
            "Count every .py file in the repo, subfolders included.",
            "how many python files are there in total?",
        ),
        "count_python_folder": (
            "How many Python files are in `{folder}`, subfolders included?",
            "Count the .py files under {folder}, including nested folders.",
            "how many python files does `{folder}` hold (recursively)?",
        ),
        "list_folder": (
            "What is in {where}?",
            "List the contents of {where}.",
            "list {where} please",
            "Show me the files and folders in {where}.",
            "What files does {where} have?",
        ),
        "write_file": (
            "Create a file `{path}` containing:\n{content}",
            "Write {path} with this content:\n{content}",
            "Put this text in a new file {path}:\n{content}",
            "create `{path}` with the content below\n{content}",
            "Please write the following into `{path}`:\n{content}",
        ),
        "direct_value": (
            "What is {expr}?",
            "Work out {expr}.",
            "what's {expr}",
            "Quick question: {expr} equals what?",
        ),
        "direct_evaluate": (
            "In Python, what does `{expr}` evaluate to?",
            "What is the value of the Python expression `{expr}`?",
            "python question: what is `{expr}`?",
        ),
        "direct_return": (
            "In Python, what does `{expr}` return?",
            "What would `{expr}` give back in Python?",
            "What is returned by `{expr}` in Python?",
        ),
        "direct_print": (
            "What does `print({expr})` print?",
            "What output does `print({expr})` produce?",
            "If you run print({expr}) in Python, what shows up?",
        ),
        "missing_file": (
            "What does `{path}` do?",
            "Summarise the file {path}.",
            "Explain {path} to me.",
            "Read `{path}` and describe it.",
            "what is {path} for?",
        ),
        "missing_symbol": (
            "Where is `{name}` defined?",
            "Show me the function {name}.",
            "Find the code for `{name}`.",
            "which file has {name}?",
            "Where does `{name}` live in this repo?",
        ),
        "ambiguous_name": (
            "Open `{name}` for me.",
            "Show me {name}.",
            "I want to change `{name}`.",
            "Let me see `{name}`.",
            "open {name}",
        ),
        "bad_regex": (
            "Where is `{call})` called?",
            "Find every use of {call}).",
            "Which lines call `{call})`?",
            "search for calls to {call})",
        ),
        "read_folder": (
            "Read `{folder}` for me.",
            "Open {folder} and tell me what it holds.",
            "cat {folder}",
            "Show me the contents of the file `{folder}`.",
        ),
        "near_miss_path": (
            "Read {path} and tell me which classes it defines.",
            "Which classes are in `{path}`?",
            "Open `{path}`: what classes does it declare?",
            "list the classes defined in {path}",
            "Look at {path} and name its classes.",
        ),
    },
    vague=(
        ("Read lines 10 to 20.", "Which file should I read lines 10 to 20 from?"),
        (
            "Where is it defined?",
            "What should I look for? Tell me the name of the function or class you mean.",
        ),
        (
            "Fix the bug.",
            "Which bug do you mean? Tell me the file, or the error message you see, and I will "
            "look.",
        ),
        (
            "Rename the function.",
            "Which function should I rename, and what should its new name be?",
        ),
        ("Run the command.", "Which command should I run?"),
        (
            "What does this file do?",
            "Which file do you mean? Give me its path and I will read it.",
        ),
        ("Change it to use the other one.", "What should I change, and which one do you mean?"),
        ("Add a test for that.", "What should the test cover? Name the function or file to test."),
    ),
)

HELD_OUT = Phrasebook(
    name="held_out",
    questions={
        "find_function": (
            "I'm looking for the code of `{name}`: which module and line is it on?",
            "Locate def {name} in this codebase, with its line number.",
        ),
        "find_class": (
            "Point me to the declaration of class `{name}` (file and line).",
            "Locate the class {name}: path and line number, please.",
        ),
        "subclasses": (
            "Name every class that has `{base}` as a base class.",
            "Tell me all direct subclasses of {base}.",
        ),
        "module_imports": (
            "Give me the modules that `{path}` pulls in.",
            "Enumerate the modules imported by {path}.",
        ),
        "files_mentioning": (
            "Tell me which source files contain the text `{word}`.",
            "Search the codebase: where does `{word}` occur, file by file?",
        ),
        "read_line": (
            "Quote line {line} of `{path}` for me.",
            "Print line number {line} from {path}.",
        ),
        "read_range": (
            "Quote lines {start} through {end} of `{path}`.",
            "Print {path} from line {start} to line {end}.",
        ),
        "parameters": (
            "Tell me the parameter names of `{label}` from `{path}`.",
            "Give me the argument list of {label} (it lives in {path}, line {line}).",
        ),
        "find_then_parameters": (
            "Look up `{name}` and tell me the arguments it accepts.",
            "I don't know where `{name}` lives; track it down and give me its parameter names.",
        ),
        "find_then_docstring": (
            "Look up class `{name}` and quote the first line of its docstring.",
            "Track down class {name} and tell me what its docstring says it does.",
        ),
        "find_then_methods": (
            "Locate class `{name}` and go through its body: name every public method.",
            "Track down {name} and enumerate the methods it exposes publicly.",
        ),
        "constant_value": (
            "I need the setting `{name}`: what is it assigned?",
            "Report what the module-level constant {name} equals.",
        ),
        "line_count": ("Tell me the number of lines in `{path}`.", "How long is {path}, in lines?"),
        "count_python_root": (
            "Tell me the total number of .py files in this codebase, every folder included.",
        ),
        "count_python_folder": ("Tell me the number of .py files under `{folder}`, nested too.",),
        "list_folder": ("Give me a listing of {where}.", "Tell me every entry of {where}."),
        "write_file": (
            "Make a new file at `{path}` with exactly this text:\n{content}",
            "Save the following as {path}:\n{content}",
        ),
        "direct_value": ("Compute {expr} for me.",),
        "direct_evaluate": ("Evaluate the Python expression `{expr}`: which value do you get?",),
        "direct_return": ("Tell me the result of running `{expr}` in Python.",),
        "direct_print": ("If I run `print({expr})`, which output appears?",),
        "missing_file": (
            "Give me a summary of the module `{path}`.",
            "Tell me the purpose of {path}.",
        ),
        "missing_symbol": (
            "Locate the definition of `{name}`.",
            "Tell me which module implements {name}.",
        ),
        "ambiguous_name": ("Bring up `{name}`, please.", "I need to edit {name}; pull it up."),
        "bad_regex": (
            "Tell me each place that calls `{call})`.",
            "Search for the call {call}) across the code.",
        ),
        "read_folder": ("Display the file `{folder}`.", "Print {folder} for me."),
        "near_miss_path": (
            "Go through {path} and report every class declared in it.",
            "Name the classes that `{path}` contains.",
        ),
    },
    vague=(
        ("Update the docs.", "Which docs should I update, and what should change in them?"),
        ("Make it faster.", "What should I speed up? Tell me the function or file you mean."),
        ("Delete the old one.", "Which file or function do you mean by the old one?"),
        (
            "Why does it fail?",
            "What fails? Give me the command you ran or the error message you see.",
        ),
        (
            "Move that into its own module.",
            "What should I move, and where should the new module go?",
        ),
        (
            "Compare the two versions.",
            "Which two versions do you mean? Give me the files or commits to compare.",
        ),
        ("Revert my last change.", "Which change do you mean? Tell me the file, and I will look."),
        ("Use the new setting there.", "Which setting do you mean, and where should I use it?"),
    ),
)

PHRASEBOOKS: dict[str, Phrasebook] = {TRAIN.name: TRAIN, HELD_OUT.name: HELD_OUT}


def phrasebook(name: str) -> Phrasebook:
    """The phrasing set called `name` (`train` or `held_out`)."""
    try:
        return PHRASEBOOKS[name]
    except KeyError:
        raise DataError(
            f"unknown phrasing {name!r}: use one of {', '.join(sorted(PHRASEBOOKS))}"
        ) from None
