"""Facts about a Python repository, computed with `ast` and the file system alone.

The task generator asks the real tools and checks their answers against these facts, so every
generated example is true by two independent routes.
"""

from __future__ import annotations

import ast
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from punie.errors import DataError

log = structlog.get_logger(__name__)

_SNIFF_BYTES = 8192
_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{5,}\b")


@dataclass(frozen=True)
class Definition:
    """A class or function definition: where it is and what it looks like."""

    name: str
    kind: str  # "class" | "function" | "method"
    path: str  # relative to the repository root, '/'-separated
    line: int
    end_line: int
    bases: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    docstring: str | None = None
    owner: str | None = None  # the class holding a method


@dataclass(frozen=True)
class Constant:
    """A module-level `NAME = <literal>` (an upper-case name bound to a short literal)."""

    name: str
    path: str
    line: int
    value: str
    """The literal as the source spells it (`ast.unparse`)."""


@dataclass(frozen=True)
class ModuleImports:
    """The modules one file imports (as written: `os`, `collections.abc`, `.._core`)."""

    path: str
    modules: tuple[str, ...]


@dataclass
class RepoFacts:
    """Everything the generator knows about a repository before it runs any tool."""

    root: Path
    python_files: list[str] = field(default_factory=list)
    text_files: list[str] = field(default_factory=list)
    definitions: list[Definition] = field(default_factory=list)
    imports: list[ModuleImports] = field(default_factory=list)
    constants: list[Constant] = field(default_factory=list)
    line_counts: dict[str, int] = field(default_factory=dict)
    """Newline count per text file, as `wc -l` reports it."""
    folders: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict, repr=False)
    """The text of every text file, read once."""

    def by_name(self) -> dict[str, list[Definition]]:
        """Definitions (classes, functions and methods) grouped by name."""
        grouped: dict[str, list[Definition]] = defaultdict(list)
        for d in self.definitions:
            grouped[d.name].append(d)
        return grouped

    def subclasses(self) -> dict[str, list[Definition]]:
        """Classes grouped by the last name of each base they list (`x.Base` counts as Base)."""
        grouped: dict[str, list[Definition]] = defaultdict(list)
        for d in self.definitions:
            if d.kind == "class":
                for base in d.bases:
                    name = re.sub(r"\[.*$", "", base).rsplit(".", 1)[-1]
                    if name.isidentifier():
                        grouped[name].append(d)
        return grouped

    def methods_of(self, cls: Definition) -> list[Definition]:
        """The methods defined in the body of class `cls`, in source order."""
        return [
            d
            for d in self.definitions
            if d.kind == "method"
            and d.owner == cls.name
            and d.path == cls.path
            and cls.line < d.line <= cls.end_line
        ]

    def read_text(self, rel: str) -> str:
        return self.texts[rel]

    def files_containing(self, needle: str) -> list[str]:
        """The text files (as ripgrep sees them: hidden ones skipped) that contain `needle`."""
        return [rel for rel in self.text_files if needle in self.read_text(rel)]

    def identifiers(self) -> dict[str, set[str]]:
        """Identifier-like words of 6+ characters and the files they appear in."""
        seen: dict[str, set[str]] = defaultdict(set)
        for rel in self.text_files:
            for word in set(_IDENTIFIER.findall(self.read_text(rel))):
                seen[word].add(rel)
        return seen


def _is_text(path: Path) -> bool:
    with path.open("rb") as handle:
        return b"\x00" not in handle.read(_SNIFF_BYTES)


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, ...]:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg:
        names.append(args.vararg.arg)
    names += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        names.append(args.kwarg.arg)
    return tuple(n for n in names if n not in ("self", "cls"))


def _summary(node: ast.AST) -> str | None:
    doc = (
        ast.get_docstring(node)
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef | ast.Module)
        else None
    )
    if not doc:
        return None
    first = doc.strip().splitlines()[0].strip()
    return first or None


def _definition(
    rel: str, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef, kind: str, **extra: Any
) -> Definition:
    """The facts of one class, function or method `node` in the file `rel`."""
    return Definition(
        name=node.name,
        kind=kind,
        path=rel,
        line=node.lineno,
        end_line=node.end_lineno or node.lineno,
        docstring=_summary(node),
        **extra,
    )


_CONSTANT_NAME = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")
_MAX_CONSTANT_CHARS = 40


def _constant(rel: str, node: ast.stmt) -> Constant | None:
    """`NAME = literal` (or `NAME: type = literal`) at module level, else None."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target, value = node.targets[0], node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        target, value = node.target, node.value
    else:
        return None
    if not (isinstance(target, ast.Name) and _CONSTANT_NAME.match(target.id)):
        return None
    if not isinstance(value, ast.Constant) or not isinstance(value.value, int | float | str):
        return None
    if node.lineno != node.end_lineno:
        return None
    text = ast.unparse(value)
    if len(text) > _MAX_CONSTANT_CHARS or "\n" in text:
        return None
    return Constant(name=target.id, path=rel, line=node.lineno, value=text)


def _file_facts(
    rel: str, tree: ast.Module
) -> tuple[list[Definition], ModuleImports, list[Constant]]:
    definitions: list[Definition] = []
    constants = [c for node in tree.body if (c := _constant(rel, node)) is not None]
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = tuple(ast.unparse(b) for b in node.bases)
            definitions.append(_definition(rel, node, "class", bases=bases))
            definitions += [
                _definition(rel, item, "method", params=_params(item), owner=node.name)
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            definitions.append(_definition(rel, node, "function", params=_params(node)))
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules.append("." * node.level + (node.module or ""))
    unique = tuple(dict.fromkeys(m for m in modules if m.strip(".")))
    return definitions, ModuleImports(path=rel, modules=unique), constants


def scan_repository(root: Path) -> RepoFacts:
    """Walk `root` (skipping hidden files and folders, as ripgrep does) and parse its Python."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"repository {str(root)!r} is not a folder: pass a source tree on disk")
    facts = RepoFacts(root=root.resolve())
    for dirpath, dirnames, filenames in os.walk(facts.root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        here = Path(dirpath)
        rel_dir = here.relative_to(facts.root).as_posix()
        if rel_dir != ".":
            facts.folders.append(rel_dir)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            if path.is_symlink() or not path.is_file() or not _is_text(path):
                continue
            rel = path.relative_to(facts.root).as_posix()
            facts.text_files.append(rel)
            data = path.read_bytes()
            facts.line_counts[rel] = data.count(b"\n")
            facts.texts[rel] = data.decode("utf-8", errors="replace")
            if not name.endswith(".py"):
                continue
            facts.python_files.append(rel)
            try:
                tree = ast.parse(data, filename=rel)
            except (SyntaxError, ValueError) as exc:
                log.info("python_file_skipped", path=rel, reason=str(exc))
                continue
            definitions, imports, constants = _file_facts(rel, tree)
            facts.definitions += definitions
            facts.imports.append(imports)
            facts.constants += constants
    if not facts.python_files:
        raise DataError(
            f"repository {str(root)!r} holds no Python files: point --repo at a Python source tree"
        )
    log.info(
        "repository_scanned",
        root=str(facts.root),
        python_files=len(facts.python_files),
        definitions=len(facts.definitions),
    )
    return facts
