"""The package's layers import downward only, and no modules import each other in a cycle.

Every `import`/`from ... import` of a `punie` module counts, also those inside functions: a lazy
upward import is still an upward dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "punie"

#: Lowest first; a module may import its own layer and the layers before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "punie",
        "punie.errors",
        "punie.logs",
        "punie.process_group",
        "punie.progress",
        "punie.shipped",
    ),
    ("punie.records",),
    ("punie.mlx",),
    ("punie.runtime",),
    ("punie.data",),
    ("punie.evaluation",),
    ("punie.loop",),
    ("punie.cli", "punie.__main__"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> Iterator[str]:
    """The `punie` modules a file imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("punie"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("punie"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if _exists(candidate) else base


def _exists(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    if rank < 0:
        raise AssertionError(f"{module} belongs to no layer; add it to LAYERS")
    return rank


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        graph[module_name(path)] = set(imported_modules(path)) - {module_name(path)}
    return graph


def test_every_import_points_down_or_sideways() -> None:
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_records_import_nothing_but_the_foundation() -> None:
    allowed = set(LAYERS[0]) | {"punie.records"}
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if module.startswith("punie.records")
        for target in sorted(targets)
        if layer_of(target) > 1 or not any(target.startswith(a) for a in allowed)
    ]
    assert not wrong, "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of module imports, as the list of modules on it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            # A package's __init__ re-exporting its submodules is not a cycle with them.
            if node.startswith(target + ".") or target.startswith(node + "."):
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if state.get(target) is None and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (found := visit(node)):
            return found
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "has_cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
        ({"a": {"a.x"}, "a.x": {"a"}}, False),
    ],
)
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], has_cycle: bool) -> None:
    assert (find_cycle(graph) is not None) is has_cycle


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    assert layer_of("punie.records.task") < layer_of("punie.runtime.agent")
    assert layer_of("punie.cli.run") == len(LAYERS) - 1


#: Third-party packages only these modules may import: the user interface stays in the CLI;
#: rich also draws the progress of children (training, model import) that never pass through it.
UI_PACKAGES = {"typer": ("punie.cli",), "rich": ("punie.cli", "punie.progress")}


def third_party_imports(path: Path) -> set[str]:
    """Top-level names of the non-punie packages a file imports (inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_cli_imports_typer_and_rich() -> None:
    wrong = [
        f"{module_name(path)} imports {package}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for package in sorted(third_party_imports(path) & UI_PACKAGES.keys())
        if not any(
            module_name(path) == home or module_name(path).startswith(home + ".")
            for home in UI_PACKAGES[package]
        )
    ]
    assert not wrong, "\n".join(wrong)
    assert "rich" in third_party_imports(PACKAGE / "cli" / "tables.py")
