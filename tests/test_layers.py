"""The package's layout is its architecture: no import cycle, and every layer imports downward only."""

from __future__ import annotations

import ast
from pathlib import Path

import initlab

PACKAGE = Path(initlab.__file__).parent

# Lower layers first; a module may import from its own layer or a lower one.
LAYERS = [
    {"errors", "checks", "specs", "registry", "_lazy", "runtime", "files"},
    {"initializers", "accel", "data"},
    {"nn", "mean_field"},
    {"measure", "training", "scaling", "diagnose", "testing"},
    {"experiments"},
    {"analysis", "viz"},
    {"report", "reproduce"},
    {"cli", "__main__"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every initlab module and the initlab modules it imports (at any depth in its code)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    targets.add(candidate if candidate in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for index, members in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"{module} is in no layer: add its subpackage to LAYERS")


def test_there_is_no_import_cycle() -> None:
    graph = _imports()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target] if target in path else [node, target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_every_module_imports_from_its_own_layer_or_below() -> None:
    upward = []
    for module, targets in _imports().items():
        if module == "initlab":
            continue  # the top-level package re-exports (lazily) from every layer
        for target in targets:
            if target != "initlab" and _layer(target) > _layer(module):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports reaching up a layer:\n" + "\n".join(sorted(upward))


def test_the_cycle_check_can_fail() -> None:
    # The walker sees imports inside functions too, so that a lazy import cannot hide a cycle.
    graph = _imports()
    assert "initlab.training.run" in graph["initlab.training.ensembles"]
    assert "initlab.initializers.base" in graph["initlab.initializers.keras"]
