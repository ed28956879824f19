"""The grounded code-task generator: true training conversations and eval tasks from a real repo.

Each task asks something about a repository on disk; the generator runs the real code tools on it
for the tool results and checks them against facts computed independently (`ast`, the file
system), keeping a task only when both agree. Every task becomes a `Conversation` (the agent's own
system prompt and tool schemas) and a `TaskSpec` for the evaluator.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import random
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import structlog
from rich.table import Table

from punie.data.generate.facts import Definition, RepoFacts, scan_repository
from punie.errors import DataError, ToolError
from punie.records.conversation import Conversation, Message, Meta, ToolCall, write_conversations
from punie.records.task import TaskCategory, TaskSpec, write_tasks
from punie.runtime.agent import SYSTEM_PROMPT, code_tool_schemas
from punie.runtime.tools import Workspace, grep, read_file, run_command, write_file

log = structlog.get_logger(__name__)

DEFAULT_LIMIT = 400
_GREP_LINE = re.compile(r"^(?P<path>[^\n:]+):(?P<line>\d+): ", re.MULTILINE)
_TRUNCATION_MARKS = ("[stopped at", "characters truncated ...]", "[... truncated:")


class _Skip(Exception):
    """A candidate whose tool results disagree with the facts (or cannot be asked); not kept."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Step:
    """One tool call the assistant makes and the real result it got."""

    name: str
    arguments: dict[str, Any]
    result: str
    error: bool = False


@dataclass(frozen=True)
class GeneratedTask:
    """A task and the conversation that answers it."""

    task: TaskSpec
    conversation: Conversation


@dataclass
class GenerationReport:
    """What the generator kept, per kind and category, and what it skipped, per reason."""

    repo: str
    repo_name: str
    seed: int
    kept: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.kept.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "repo_name": self.repo_name,
            "seed": self.seed,
            "tasks": self.total,
            "kinds": dict(sorted(self.kept.items())),
            "categories": dict(sorted(self.categories.items())),
            "skipped": dict(self.skipped.most_common()),
            "seconds": round(self.seconds, 3),
        }

    def table(self) -> Table:
        table = Table(title=f"generate: {self.repo_name} ({self.total} tasks, seed {self.seed})")
        table.add_column("kind")
        table.add_column("tasks", justify="right")
        for kind, count in sorted(self.kept.items()):
            table.add_row(kind, str(count))
        for category, count in sorted(self.categories.items()):
            table.add_row(f"[dim]category {category}[/dim]", str(count))
        for reason, count in self.skipped.most_common():
            table.add_row(f"[yellow]skipped: {reason}[/yellow]", str(count))
        table.add_row("[bold]total[/bold]", str(self.total))
        return table


def package_license(repo: Path, repo_name: str) -> str:
    """The license of the installed distribution that provides `repo`, else "see repository"."""
    candidates = importlib.metadata.packages_distributions().get(Path(repo).name, [])
    candidates = candidates or importlib.metadata.packages_distributions().get(repo_name, [])
    for dist_name in candidates:
        try:
            meta = importlib.metadata.metadata(dist_name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for key in ("License-Expression", "License"):
            value = (meta.get(key) or "").strip()
            if value and len(value) < 80 and "\n" not in value:
                return value
        for classifier in meta.get_all("Classifier") or []:
            if classifier.startswith("License ::"):
                return classifier.rsplit("::", 1)[-1].strip()
    return "see repository"


def _pick(rng: random.Random, options: list[str] | tuple[str, ...]) -> str:
    return options[rng.randrange(len(options))]


def _code(text: str) -> str:
    return f"`{text}`"


def _listing(items: list[str]) -> str:
    quoted = [_code(i) for i in items]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + f" and {quoted[-1]}"


def _grep_hits(result: str) -> list[tuple[str, int]]:
    return [(m["path"], int(m["line"])) for m in _GREP_LINE.finditer(result)]


def _untruncated(result: str) -> None:
    if any(mark in result for mark in _TRUNCATION_MARKS):
        raise _Skip("result_truncated")


class TaskGenerator:
    """Builds grounded tasks from one repository; one method per kind of task."""

    def __init__(self, facts: RepoFacts, repo_name: str, license: str, seed: int) -> None:
        self.facts = facts
        self.ws = Workspace(facts.root)
        self.repo_name = repo_name
        self.license = license
        self.rng = random.Random(seed)
        self._by_name = facts.by_name()
        self._scratch = tempfile.TemporaryDirectory(prefix="punie-generate-")
        self.scratch = Workspace(Path(self._scratch.name))

    def close(self) -> None:
        self._scratch.cleanup()

    # The real tools, returning what the agent hands back to the model.
    def call(self, name: str, arguments: dict[str, Any], *, scratch: bool = False) -> Step:
        ws = self.scratch if scratch else self.ws
        try:
            if name == "grep":
                result = grep(ws, **arguments)
            elif name == "read_file":
                result = read_file(ws, **arguments)
            elif name == "run_command":
                result = run_command(ws, arguments["command"], timeout_s=30.0)
            elif name == "write_file":
                result = write_file(ws, arguments["path"], arguments["content"])
            else:
                raise ValueError(f"unknown tool {name}")
        except ToolError as exc:
            return Step(name, arguments, f"Error: {exc}", error=True)
        return Step(name, arguments, result)

    def ok(self, name: str, arguments: dict[str, Any], **kwargs: Any) -> Step:
        step = self.call(name, arguments, **kwargs)
        if step.error:
            raise _Skip("tool_error")
        return step

    # ---- kinds -------------------------------------------------------------------------------
    def kinds(self) -> dict[str, tuple[TaskCategory, list[Any], Callable[[Any], GeneratedTask]]]:
        """Per kind: its category, its candidates (deterministic order) and its builder."""
        f = self.facts
        unique = [ds[0] for ds in self._by_name.values() if len(ds) == 1]
        functions = sorted(
            (d for d in unique if d.kind == "function" and len(d.name) >= 4),
            key=lambda d: (d.path, d.line),
        )
        classes = sorted((d for d in unique if d.kind == "class"), key=lambda d: (d.path, d.line))
        with_params = sorted(
            (d for d in unique if d.kind in ("function", "method") and d.params),
            key=lambda d: (d.path, d.line),
        )
        documented = [d for d in classes if d.docstring and len(d.docstring) <= 160]
        ambiguous = sorted(
            name
            for name, ds in self._by_name.items()
            if 2 <= len(ds) <= 4 and not name.startswith("__") and len(name) >= 4
        )
        bases = sorted(name for name, subs in f.subclasses().items() if 1 <= len(subs) <= 8)
        identifiers = f.identifiers()
        mentioned = sorted(w for w, files in identifiers.items() if 2 <= len(files) <= 6)
        folders = sorted([".", *f.folders])
        small_folders = [d for d in folders if 0 < len(self._ls(d)) <= 25]
        sized = [p for p in f.python_files if f.line_counts.get(p, 0) >= 8]
        importing = [m for m in f.imports if 1 <= len(m.modules) <= 12]
        return {
            "find_function": ("single_tool", functions, self.find_function),
            "find_class": ("single_tool", classes, self.find_class),
            "subclasses": ("single_tool", bases, self.subclasses),
            "module_imports": ("single_tool", importing, self.module_imports),
            "files_mentioning": ("single_tool", mentioned, self.files_mentioning),
            "read_lines": ("single_tool", sized, self.read_lines),
            "parameters": ("single_tool", with_params, self.parameters),
            "line_count": ("single_tool", sized, self.line_count),
            "count_python_files": ("single_tool", folders, self.count_python_files),
            "list_folder": ("single_tool", small_folders, self.list_folder),
            "write_file": ("single_tool", list(range(len(_WRITE_PATHS))), self.write_new_file),
            "find_then_read_parameters": ("multi_step", functions, self.find_then_parameters),
            "find_then_read_docstring": ("multi_step", documented, self.find_then_docstring),
            "direct_answer": ("direct_answer", list(range(400)), self.direct_answer),
            "missing_file": ("cannot_answer", list(range(len(_MISSING_NAMES))), self.missing_file),
            "missing_symbol": ("cannot_answer", list(range(40)), self.missing_symbol),
            "ask_back_ambiguous_name": ("ask_back", ambiguous, self.ambiguous_name),
            "ask_back_vague": ("ask_back", list(range(len(_VAGUE))), self.vague_request),
            "recovery_bad_regex": ("recovery", functions, self.recover_bad_regex),
            "recovery_directory": ("recovery", small_folders, self.recover_directory),
        }

    def find_function(self, d: Definition) -> GeneratedTask:
        question = _pick(
            self.rng,
            (
                f"Where is the function `{d.name}` defined?",
                f"In which file and on which line is `{d.name}()` defined?",
                f"Find the definition of the function {d.name}.",
                f"Which file defines `{d.name}`?",
            ),
        )
        pattern = f"def {d.name}[(]"
        step = self._definition_grep(pattern, d)
        answer = _pick(
            self.rng,
            (
                f"`{d.name}` is defined in `{d.path}` at line {d.line}.",
                f"The function `{d.name}` is defined on line {d.line} of `{d.path}`.",
            ),
        )
        accepted = [
            pattern,
            rf"^(async )?def {d.name}\(",
            f"def {d.name}\\(",
            f"def {d.name}",
            f"def {d.name}\\b",
            d.name,
        ]
        return self.task(
            "find_function",
            "single_tool",
            question,
            [step],
            answer,
            "grep",
            {"pattern": accepted},
            [d.path, str(d.line)],
        )

    def find_class(self, d: Definition) -> GeneratedTask:
        question = _pick(
            self.rng,
            (
                f"Where is the class `{d.name}` defined?",
                f"Which file defines class {d.name}, and on what line?",
                f"Find where `{d.name}` is declared.",
            ),
        )
        pattern = f"class {d.name}[(:]"
        step = self._definition_grep(pattern, d)
        answer = f"The class `{d.name}` is defined in `{d.path}` at line {d.line}."
        accepted = [
            pattern,
            rf"^class {d.name}\b",
            f"class {d.name}\\b",
            f"class {d.name}",
            f"^class {d.name}",
            d.name,
        ]
        return self.task(
            "find_class",
            "single_tool",
            question,
            [step],
            answer,
            "grep",
            {"pattern": accepted},
            [d.path, str(d.line)],
        )

    def _definition_grep(self, pattern: str, d: Definition) -> Step:
        arguments: dict[str, Any] = {"pattern": pattern}
        if self.rng.random() < 0.5:
            arguments["glob"] = "*.py"
        step = self.ok("grep", arguments)
        if _grep_hits(step.result) != [(d.path, d.line)]:
            raise _Skip("grep_disagrees_with_ast")
        return step

    def subclasses(self, base: str) -> GeneratedTask:
        subs = sorted(self.facts.subclasses()[base], key=lambda d: (d.path, d.line))
        question = _pick(
            self.rng,
            (
                f"Which classes inherit from `{base}`?",
                f"List the subclasses of {base} in this repository.",
                f"What classes derive from `{base}`?",
            ),
        )
        pattern = f"class .*[(, ]{base}[),]"
        step = self.ok("grep", {"pattern": pattern, "glob": "*.py"})
        _untruncated(step.result)
        if sorted(_grep_hits(step.result)) != sorted((d.path, d.line) for d in subs):
            raise _Skip("grep_disagrees_with_ast")
        places = [f"`{d.name}` ({d.path}, line {d.line})" for d in subs]
        if len(subs) == 1:
            answer = f"One class inherits from `{base}`: {places[0]}."
        else:
            answer = f"{len(subs)} classes inherit from `{base}`: " + "; ".join(places) + "."
        return self.task(
            "subclasses",
            "single_tool",
            question,
            [step],
            answer,
            "grep",
            {},
            [d.name for d in subs],
        )

    def module_imports(self, imports: Any) -> GeneratedTask:
        path = imports.path
        question = _pick(
            self.rng,
            (
                f"What does `{path}` import?",
                f"Which modules are imported in {path}?",
                f"List the imports of `{path}`.",
            ),
        )
        step = self.ok("grep", {"pattern": "import ", "path": path})
        _untruncated(step.result)
        if any(m not in step.result for m in imports.modules):
            raise _Skip("grep_disagrees_with_ast")
        modules = list(imports.modules)
        noun = "module" if len(modules) == 1 else "modules"
        answer = f"`{path}` imports {len(modules)} {noun}: {_listing(modules)}."
        return self.task(
            "module_imports",
            "single_tool",
            question,
            [step],
            answer,
            "grep",
            {"path": [path, f"./{path}"]},
            modules,
        )

    def files_mentioning(self, word: str) -> GeneratedTask:
        question = _pick(
            self.rng,
            (
                f"Which files mention `{word}`?",
                f"In which files does the string {word} appear?",
                f"Find every file that contains `{word}`.",
            ),
        )
        step = self.ok("grep", {"pattern": word})
        _untruncated(step.result)
        files = sorted({p for p, _ in _grep_hits(step.result)})
        if files != sorted(self.facts.files_containing(word)):
            raise _Skip("grep_disagrees_with_files")
        answer = f"`{word}` appears in {len(files)} files: {_listing(files)}."
        accepted = [word, rf"\b{word}\b", re.escape(word)]
        return self.task(
            "files_mentioning",
            "single_tool",
            question,
            [step],
            answer,
            "grep",
            {"pattern": accepted},
            files,
        )

    def read_lines(self, path: str) -> GeneratedTask:
        lines = self.facts.read_text(path).split("\n")
        total = self.facts.line_counts[path]
        start = self.rng.randint(1, max(1, total - 5))
        end = min(total, start + self.rng.randint(0, 5))
        shown = lines[start - 1 : end]
        if not any(s.strip() for s in shown) or any(len(s) > 200 for s in shown):
            raise _Skip("blank_or_long_lines")
        if start == end:
            question = _pick(
                self.rng,
                (f"What is on line {start} of `{path}`?", f"Show me line {start} of {path}."),
            )
        else:
            question = _pick(
                self.rng,
                (
                    f"Show me lines {start}-{end} of `{path}`.",
                    f"What do lines {start} to {end} of {path} say?",
                ),
            )
        step = self.ok("read_file", {"path": path, "start_line": start, "end_line": end})
        if step.result != "".join(s + "\n" for s in shown):
            raise _Skip("read_disagrees_with_file")
        body = "\n".join(shown)
        where = f"Line {start}" if start == end else f"Lines {start}-{end}"
        answer = f"{where} of `{path}`:\n```python\n{body}\n```"
        facts = [s.strip() for s in shown if s.strip()]
        return self.task(
            "read_lines",
            "single_tool",
            question,
            [step],
            answer,
            "read_file",
            {"path": [path], "start_line": [start], "end_line": [end]},
            [facts[0], facts[-1]] if len(facts) > 1 else facts,
        )

    def _params_answer(self, d: Definition) -> tuple[str, str]:
        label = f"{d.owner}.{d.name}" if d.owner else d.name
        noun = "parameter" if len(d.params) == 1 else "parameters"
        answer = f"`{label}` takes {len(d.params)} {noun}: {_listing(list(d.params))}."
        return label, answer

    def _signature_read(self, d: Definition) -> Step:
        end = min(d.end_line, d.line + 15)
        step = self.ok("read_file", {"path": d.path, "start_line": d.line, "end_line": end})
        if any(not re.search(rf"\b{re.escape(p)}\b", step.result) for p in d.params):
            raise _Skip("read_disagrees_with_ast")
        return step

    def parameters(self, d: Definition) -> GeneratedTask:
        label, answer = self._params_answer(d)
        question = _pick(
            self.rng,
            (
                f"What parameters does `{label}` in `{d.path}` take?",
                f"Which arguments does {label} (defined in {d.path} at line {d.line}) accept?",
            ),
        )
        step = self._signature_read(d)
        return self.task(
            "parameters",
            "single_tool",
            question,
            [step],
            answer,
            "read_file",
            {"path": [d.path]},
            list(d.params),
        )

    def find_then_parameters(self, d: Definition) -> GeneratedTask:
        if not d.params:
            raise _Skip("no_parameters")
        _, answer = self._params_answer(d)
        question = _pick(
            self.rng,
            (
                f"What arguments does the function `{d.name}` take?",
                f"What is the signature of `{d.name}`? List its parameters.",
            ),
        )
        pattern = f"def {d.name}[(]"
        first = self._definition_grep(pattern, d)
        second = self._signature_read(d)
        answer = f"{answer[:-1]}; it is defined in `{d.path}` at line {d.line}."
        return self.task(
            "find_then_read_parameters",
            "multi_step",
            question,
            [first, second],
            answer,
            "grep",
            {},
            list(d.params),
        )

    def find_then_docstring(self, d: Definition) -> GeneratedTask:
        question = _pick(
            self.rng,
            (
                f"What is the class `{d.name}` for, according to its docstring?",
                f"What does the docstring of {d.name} say?",
            ),
        )
        first = self._definition_grep(f"class {d.name}[(:]", d)
        end = min(d.end_line, d.line + 12)
        second = self.ok("read_file", {"path": d.path, "start_line": d.line, "end_line": end})
        assert d.docstring is not None
        if d.docstring not in second.result:
            raise _Skip("read_disagrees_with_ast")
        answer = (
            f"`{d.name}` is defined in `{d.path}` (line {d.line}); its docstring says: "
            f'"{d.docstring}"'
        )
        return self.task(
            "find_then_read_docstring",
            "multi_step",
            question,
            [first, second],
            answer,
            "grep",
            {},
            [d.path, d.docstring],
        )

    def line_count(self, path: str) -> GeneratedTask:
        n = self.facts.line_counts[path]
        question = _pick(
            self.rng,
            (f"How many lines does `{path}` have?", f"Count the lines of {path}."),
        )
        step = self.ok("run_command", {"command": f"wc -l {path}"})
        if f"exit code: 0\n{n} {path}" not in step.result:
            raise _Skip("command_disagrees_with_file")
        answer = f"`{path}` has {n} lines."
        return self.task(
            "line_count",
            "single_tool",
            question,
            [step],
            answer,
            "run_command",
            {"command": [f"wc -l {path}", f"wc -l < {path}", f"cat {path} | wc -l"]},
            [str(n)],
        )

    def count_python_files(self, folder: str) -> GeneratedTask:
        if folder == ".":
            n = len(self.facts.python_files)
            question = "How many Python files does this repository have (in all folders)?"
            answer = f"The repository has {n} Python files."
        else:
            n = sum(p.startswith(folder + "/") for p in self.facts.python_files)
            question = f"How many Python files are in `{folder}`, subfolders included?"
            answer = f"`{folder}` holds {n} Python files, subfolders included."
        if n == 0:
            raise _Skip("no_python_files")
        step = self.ok("run_command", {"command": f"find {folder} -name '*.py' | wc -l"})
        if step.result.strip().split("\n")[-1].strip() != str(n):
            raise _Skip("command_disagrees_with_files")
        return self.task(
            "count_python_files",
            "single_tool",
            question,
            [step],
            answer,
            "run_command",
            {},
            [str(n)],
        )

    def _ls(self, folder: str) -> list[str]:
        path = self.facts.root / folder
        return sorted(e.name for e in path.iterdir() if not e.name.startswith("."))

    def list_folder(self, folder: str) -> GeneratedTask:
        entries = self._ls(folder)
        where = "the repository root" if folder == "." else f"`{folder}`"
        question = _pick(
            self.rng,
            (f"What is in {where}?", f"List the contents of {where}."),
        )
        step = self.ok("run_command", {"command": "ls" if folder == "." else f"ls {folder}"})
        listed = step.result.split("\n", 1)[1].split()
        if sorted(listed) != entries or not step.result.startswith("exit code: 0"):
            raise _Skip("command_disagrees_with_files")
        answer = f"{where[0].upper()}{where[1:]} holds {len(entries)} entries: {_listing(entries)}."
        return self.task(
            "list_folder",
            "single_tool",
            question,
            [step],
            answer,
            "run_command",
            {},
            entries,
        )

    def write_new_file(self, index: int) -> GeneratedTask:
        path, content = _WRITE_PATHS[index]
        if (self.facts.root / path).exists():
            raise _Skip("file_exists")
        question = _pick(
            self.rng,
            (
                f"Create a file `{path}` containing:\n{content}",
                f"Write {path} with this content:\n{content}",
            ),
        )
        # Written in a scratch copy of the layout: installed packages must stay untouched, and
        # write_file's answer depends only on the relative path and the content.
        step = self.ok("write_file", {"path": path, "content": content}, scratch=True)
        if (self.scratch.root / path).read_text(encoding="utf-8") != content:
            raise _Skip("write_not_read_back")
        lines = content.count("\n") + (0 if content.endswith("\n") else 1)
        answer = f"I created `{path}` ({lines} line{'s' if lines != 1 else ''})."
        return self.task(
            "write_file",
            "single_tool",
            question,
            [step],
            answer,
            "write_file",
            {"path": [path, f"./{path}"], "content": [content, content.rstrip("\n")]},
            [path],
        )

    def direct_answer(self, index: int) -> GeneratedTask:
        expression, phrasing = _expression(self.rng)
        # The expressions are built above from fixed templates and numbers; real Python computes
        # the answer rather than a hard-coded table.
        value = eval(
            expression,
            {
                "__builtins__": {
                    "len": len,
                    "sorted": sorted,
                    "max": max,
                    "sum": sum,
                    "list": list,
                    "range": range,
                    "int": int,
                    "bool": bool,
                    "min": min,
                }
            },
        )
        shown = repr(value)
        question = phrasing.format(expr=expression)
        if phrasing.startswith("What does `print"):
            shown = str(value)
            answer = f"It prints `{shown}`."
        elif phrasing.startswith("What is"):
            answer = f"{expression} = {shown}."
        else:
            answer = f"`{expression}` evaluates to `{shown}`."
        return self.task(
            "direct_answer",
            "direct_answer",
            question,
            [],
            answer,
            None,
            {},
            [shown],
        )

    def missing_file(self, index: int) -> GeneratedTask:
        folders = sorted({p.rsplit("/", 1)[0] for p in self.facts.python_files if "/" in p})
        folder = self.rng.choice(folders) if folders else ""
        path = f"{folder}/{_MISSING_NAMES[index]}" if folder else _MISSING_NAMES[index]
        if (self.facts.root / path).exists():
            raise _Skip("file_exists")
        question = _pick(
            self.rng,
            (f"What does `{path}` do?", f"Summarise the file {path}.", f"Explain {path} to me."),
        )
        step = self.call("read_file", {"path": path})
        if not step.error or "does not exist" not in step.result:
            raise _Skip("expected_error_missing")
        answer = (
            f"There is no file `{path}` in this repository, so I cannot say what it does. "
            "If it lives elsewhere, give me its path."
        )
        return self.task(
            "missing_file",
            "cannot_answer",
            question,
            [step],
            answer,
            "read_file",
            {"path": [path, f"./{path}"]},
            [path],
        )

    def missing_symbol(self, index: int) -> GeneratedTask:
        words = sorted(w for w in self.facts.identifiers() if w.isidentifier() and "_" not in w)
        if len(words) < 2:
            raise _Skip("too_few_identifiers")
        name = f"{self.rng.choice(words).lower()}_{self.rng.choice(words).lower()}"
        if self.facts.files_containing(name):
            raise _Skip("name_exists")
        question = _pick(
            self.rng,
            (f"Where is `{name}` defined?", f"Show me the function {name}."),
        )
        step = self.ok("grep", {"pattern": name})
        if not step.result.startswith("no matches"):
            raise _Skip("grep_disagrees_with_files")
        answer = (
            f"Nothing in this repository is called `{name}`: grep finds no match for it, so it "
            "is not defined here. Check the spelling, or tell me where it should be."
        )
        return self.task(
            "missing_symbol",
            "cannot_answer",
            question,
            [step],
            answer,
            "grep",
            {},
            [name],
        )

    def ambiguous_name(self, name: str) -> GeneratedTask:
        defs = sorted(self._by_name[name], key=lambda d: (d.path, d.line))
        question = _pick(
            self.rng,
            (f"Open `{name}` for me.", f"Show me {name}.", f"I want to change `{name}`."),
        )
        step = self.ok("grep", {"pattern": f"(def|class) {name}[(:]"})
        if sorted(_grep_hits(step.result)) != [(d.path, d.line) for d in defs]:
            raise _Skip("grep_disagrees_with_ast")
        places = [
            f"{d.owner + '.' if d.owner else ''}{d.name} in `{d.path}` (line {d.line})"
            for d in defs
        ]
        answer = (
            f"There are {len(defs)} definitions named `{name}`: "
            + "; ".join(places)
            + ". Which one do you mean?"
        )
        return self.task(
            "ask_back_ambiguous_name",
            "ask_back",
            question,
            [step],
            answer,
            "grep",
            {},
            [*sorted({d.path for d in defs}), "?"],
        )

    def vague_request(self, index: int) -> GeneratedTask:
        question, answer = _VAGUE[index]
        return self.task("ask_back_vague", "ask_back", question, [], answer, None, {}, ["?"])

    def recover_bad_regex(self, d: Definition) -> GeneratedTask:
        needle = f"{d.name}("
        hits = sorted(
            (rel, number)
            for rel in self.facts.text_files
            for number, line in enumerate(self.facts.read_text(rel).split("\n"), start=1)
            if needle in line
        )
        if not 1 <= len(hits) <= 10:
            raise _Skip("too_many_or_no_uses")
        question = _pick(
            self.rng,
            (f"Where is `{needle})` called?", f"Find every use of {needle})."),
        )
        first = self.call("grep", {"pattern": needle})
        if not first.error or "not a valid regular expression" not in first.result:
            raise _Skip("expected_error_missing")
        fixed = f"{d.name}[(]"
        second = self.ok("grep", {"pattern": fixed})
        if sorted(_grep_hits(second.result)) != hits:
            raise _Skip("grep_disagrees_with_files")
        files = sorted({p for p, _ in hits})
        where = "; ".join(
            f"`{p}` (line{'s' if len(ls) > 1 else ''} {', '.join(map(str, ls))})"
            for p in files
            for ls in [[n for q, n in hits if q == p]]
        )
        answer = f"`{needle})` appears on {len(hits)} line{'s' if len(hits) > 1 else ''}: {where}."
        return self.task(
            "recovery_bad_regex",
            "recovery",
            question,
            [first, second],
            answer,
            "grep",
            {"pattern": list(dict.fromkeys([fixed, f"{d.name}\\(", re.escape(needle)]))},
            files,
        )

    def recover_directory(self, folder: str) -> GeneratedTask:
        if folder == ".":
            raise _Skip("root_folder")
        entries = self._ls(folder)
        question = _pick(
            self.rng, (f"Read `{folder}` for me.", f"Open {folder} and tell me what it holds.")
        )
        first = self.call("read_file", {"path": folder})
        if not first.error or "is a directory" not in first.result:
            raise _Skip("expected_error_missing")
        second = self.ok("run_command", {"command": f"ls {folder}"})
        if sorted(second.result.split("\n", 1)[1].split()) != entries:
            raise _Skip("command_disagrees_with_files")
        answer = f"`{folder}` is a folder; it holds {len(entries)} entries: {_listing(entries)}."
        return self.task(
            "recovery_directory",
            "recovery",
            question,
            [first, second],
            answer,
            "run_command",
            {"command": [f"ls {folder}", f"ls {folder}/", f"ls -la {folder}"]},
            entries,
        )

    # ---- records -----------------------------------------------------------------------------
    def task(
        self,
        kind: str,
        category: TaskCategory,
        question: str,
        steps: list[Step],
        answer: str,
        expected_tool: str | None,
        expected_arguments: dict[str, list[Any]],
        required_facts: list[str],
    ) -> GeneratedTask:
        digest = hashlib.sha1(f"{self.repo_name}\0{kind}\0{question}".encode()).hexdigest()[:10]
        task_id = f"{self.repo_name}-{kind}-{digest}"
        messages = [
            Message(role="system", content=SYSTEM_PROMPT),
            Message(role="user", content=question),
        ]
        for number, step in enumerate(steps):
            call_id = f"call_{number}"
            messages.append(
                Message(
                    role="assistant",
                    tool_calls=[ToolCall(id=call_id, name=step.name, arguments=step.arguments)],
                )
            )
            messages.append(
                Message(role="tool", content=step.result, tool_call_id=call_id, name=step.name)
            )
        messages.append(Message(role="assistant", content=answer))
        meta = Meta(
            source="generated",
            license=self.license,
            row_id=task_id,
            repository=self.repo_name,
            kind=kind,
            category=category,
        )
        conversation = Conversation(messages=messages, tools=code_tool_schemas(), meta=meta)
        spec = TaskSpec(
            id=task_id,
            repo=str(self.facts.root),
            repo_name=self.repo_name,
            category=category,
            question=question,
            expected_tool=expected_tool,
            expected_arguments=expected_arguments,
            required_facts=required_facts,
            kind=kind,
        )
        return GeneratedTask(task=spec, conversation=conversation)

    def generate(
        self, limit: int, report: GenerationReport, on_task: Callable[[], None] | None = None
    ) -> Iterator[GeneratedTask]:
        """Round-robin over the kinds, each kind's candidates in seeded order, up to `limit`."""
        queues: list[tuple[str, TaskCategory, Iterator[Any], Callable[[Any], GeneratedTask]]] = []
        for kind, (category, candidates, build) in self.kinds().items():
            order = list(candidates)
            self.rng.shuffle(order)
            queues.append((kind, category, iter(order), build))
        seen: set[str] = set()
        produced = 0
        while queues and produced < limit:
            for entry in list(queues):
                if produced >= limit:
                    break
                kind, category, candidates, build = entry
                for candidate in candidates:
                    try:
                        generated = build(candidate)
                    except _Skip as skip:
                        report.skipped[skip.reason] += 1
                        continue
                    if generated.task.question in seen:
                        report.skipped["duplicate_question"] += 1
                        continue
                    seen.add(generated.task.question)
                    report.kept[kind] += 1
                    report.categories[category] += 1
                    produced += 1
                    if on_task is not None:
                        on_task()
                    yield generated
                    break
                else:
                    queues.remove(entry)


_WRITE_PATHS: list[tuple[str, str]] = [
    ("notes/todo.txt", "- write the release notes\n- check the changelog\n"),
    ("scratch/hello.py", 'print("hello from punie")\n'),
    ("docs/NOTES.md", "# Notes\n\nThings to look at next.\n"),
    ("tmp/output.txt", "done\n"),
    ("scripts/check.sh", "#!/usr/bin/env bash\nset -euo pipefail\npython -m pytest -q\n"),
    ("data/sample.csv", "name,count\nalpha,1\nbeta,2\n"),
    ("CONTRIBUTORS.txt", "Ada Lovelace\nGrace Hopper\n"),
    ("config/settings.toml", '[tool]\nname = "demo"\nverbose = true\n'),
]

_MISSING_NAMES: list[str] = [
    "helpers_legacy.py",
    "compat_old.py",
    "settings_local.py",
    "views.py",
    "models_v2.py",
    "old_api.py",
]

_VAGUE: list[tuple[str, str]] = [
    ("Read lines 10 to 20.", "Which file should I read lines 10 to 20 from?"),
    (
        "Where is it defined?",
        "What should I look for? Tell me the name of the function or class you mean.",
    ),
    (
        "Fix the bug.",
        "Which bug do you mean? Tell me the file, or the error message you see, and I will look.",
    ),
    ("Rename the function.", "Which function should I rename, and what should its new name be?"),
    ("Run the command.", "Which command should I run?"),
    ("What does this file do?", "Which file do you mean? Give me its path and I will read it."),
    ("Change it to use the other one.", "What should I change, and which one do you mean?"),
    ("Add a test for that.", "What should the test cover? Name the function or file to test."),
]


def _expression(rng: random.Random) -> tuple[str, str]:
    """A Python expression built from a template and seeded numbers, and a question phrasing."""
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
    word = rng.choice(["punie", "python", "agent", "lambda", "kernel", "tensor", "parser"])
    items = [rng.randint(0, 20) for _ in range(rng.randint(3, 6))]
    templates = [
        (f"{a} * {b}", "What is {expr}?"),
        (f"{a} + {b} * {c}", "What is {expr}?"),
        (f"{a * b} // {c}", "In Python, what does `{expr}` evaluate to?"),
        (f"{a} % {c}", "In Python, what does `{expr}` evaluate to?"),
        (f"2 ** {c + 3}", "What is {expr}?"),
        (f"len('{word}')", "In Python, what does `{expr}` return?"),
        (f"sorted({items})", "In Python, what does `{expr}` return?"),
        (f"'{word}'.upper()", "What does `print({expr})` print?"),
        (f"'{word}'[::-1]", "In Python, what does `{expr}` evaluate to?"),
        (f"list(range({c}))", "In Python, what does `{expr}` return?"),
        (f"max({items}) - min({items})", "In Python, what does `{expr}` evaluate to?"),
        (f"sum({items})", "What does `print({expr})` print?"),
        (f"'{word}'.split('{word[1]}')", "In Python, what does `{expr}` return?"),
        (f"{items}[-2:]", "In Python, what does `{expr}` evaluate to?"),
        (f"bool({items[:0]})", "In Python, what does `{expr}` return?"),
        (f"int('{a}') + {b}", "What does `print({expr})` print?"),
    ]
    return templates[rng.randrange(len(templates))]


def visible_to_tools(root: Path) -> bool:
    """Whether the grep tool sees the Python files under `root`.

    ripgrep honours the .gitignore files above a folder, so an installed package inside a
    git-ignored virtual environment (uv writes `.venv/.gitignore` holding `*`) looks empty to it.
    """
    return not grep(Workspace(root), ".", max_matches=1).startswith("no matches")


def snapshot_repository(repo: Path, into: Path, name: str) -> Path:
    """Copy `repo`'s files (no hidden ones, no `__pycache__`) to `into/<name>-<digest>`, once.

    The digest covers every file's path, size and mtime, so a changed tree gets a new snapshot;
    the copy is built beside its target and renamed into place, so it is complete or absent.
    """
    repo = Path(repo).resolve()
    digest = hashlib.sha1()
    files: list[Path] = []
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            digest.update(f"{rel.as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            files.append(rel)
    target = Path(into) / f"{name}-{digest.hexdigest()[:12]}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        for rel in files:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / rel, staging / rel)
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_dir():  # another process may have won the rename
            raise
    log.info("repository_snapshot", source=str(repo), snapshot=str(target), files=len(files))
    return target


def default_snapshot_dir() -> Path:
    """Where snapshots of repositories the tools cannot see in place are kept."""
    return platformdirs.user_cache_path("punie") / "repos"


def generate_tasks(
    repo: Path,
    *,
    repo_name: str | None = None,
    limit: int = DEFAULT_LIMIT,
    seed: int = 0,
    snapshot_dir: Path | None = None,
    on_task: Callable[[], None] | None = None,
) -> tuple[list[GeneratedTask], GenerationReport]:
    """Up to `limit` grounded tasks from the Python repository at `repo`, deterministic per seed.

    A repository that the tools cannot see in place (an installed package in an ignored
    `.venv`) is first copied to `snapshot_dir`; the tasks then name that copy as their `repo`,
    so the evaluator runs the agent on exactly the tree the tasks were made from.
    """
    started = time.perf_counter()
    source = Path(repo).expanduser()
    if not source.is_dir():
        raise DataError(f"repository {str(source)!r} is not a folder: pass a source tree on disk")
    source = source.resolve()
    name = repo_name or source.name
    root = source
    if not visible_to_tools(root):
        root = snapshot_repository(source, snapshot_dir or default_snapshot_dir(), name)
        if not visible_to_tools(root):
            raise DataError(
                f"grep cannot see the files of {str(root)!r} (a .gitignore above it hides them): "
                "pass --snapshot-dir outside any git-ignored folder"
            )
    facts = scan_repository(root)
    report = GenerationReport(repo=str(facts.root), repo_name=name, seed=seed)
    generator = TaskGenerator(facts, name, package_license(source, name), seed)
    try:
        tasks = list(generator.generate(limit, report, on_task))
    finally:
        generator.close()
    report.seconds = time.perf_counter() - started
    log.info("tasks_generated", repo=name, tasks=len(tasks), seconds=round(report.seconds, 2))
    return tasks, report


def generate_to_files(
    repo: Path,
    out: Path,
    tasks_out: Path | None = None,
    *,
    repo_name: str | None = None,
    limit: int = DEFAULT_LIMIT,
    seed: int = 0,
    snapshot_dir: Path | None = None,
    on_task: Callable[[], None] | None = None,
) -> GenerationReport:
    """Generate tasks and write the conversations (and the task specs) as JSONL, atomically."""
    tasks, report = generate_tasks(
        repo,
        repo_name=repo_name,
        limit=limit,
        seed=seed,
        snapshot_dir=snapshot_dir,
        on_task=on_task,
    )
    write_conversations(Path(out), (t.conversation for t in tasks))
    if tasks_out is not None:
        write_tasks(Path(tasks_out), (t.task for t in tasks))
    return report
