"""The tiers of `selfplay/` (docs/design.md: core < config < tasks < pipeline < policy < jobs < servers < cli): no
import circle, and a module imports only tiers below it, function-local imports included (read with `ast`, nothing
is imported). Run as a script to print the graph's cycles and upward edges."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIERS = ("core", "config", "tasks", "pipeline", "policy", "jobs", "servers", "cli")
# Known upward edges (remove an entry when its edge is gone; add none):
KNOWN_UPWARD = {("selfplay.config.run", "selfplay.tasks.builtin")}  # function-local: pair_count (the family's size)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported selfplay module: first line}; `from pkg import name` counts pkg.name when it is a module."""
    modules = {module_name(p): p for p in (ROOT / "selfplay").rglob("*.py")}

    def known(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, {})
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                hit = known(target) if target.startswith("selfplay") else None
                if hit and hit != name:
                    edges.setdefault(hit, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def tier(module: str) -> int | None:
    parts = module.split(".")
    return TIERS.index(parts[1]) if len(parts) > 1 and parts[1] in TIERS else None


def upward(graph: dict[str, dict[str, int]]) -> set[tuple[str, str]]:
    return {(a, b) for a, edges in graph.items() for b in edges
            if tier(a) is not None and tier(b) is not None and tier(b) > tier(a)}


def test_no_import_circle_in_selfplay():
    assert cycles(import_graph()) == []


def test_cycles_are_found_when_there_is_one():
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]


def test_no_new_import_goes_up_the_tiers():
    graph = import_graph()
    assert graph["selfplay.config.run"]  # the graph is read (config.run imports config.common)
    assert upward(graph) - KNOWN_UPWARD == set()


if __name__ == "__main__":
    graph = import_graph()
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} edges, cycles: {cycles(graph) or 'none'}")
    for a, b in sorted(upward(graph)):
        print(f"upward: {a} -> {b} (line {graph[a][b]})")
