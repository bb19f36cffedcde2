"""The plugin's layout: no import cycles, between its modules or between its parts.

A part is a subpackage of plugin/ (plugin.orders, plugin.worklist, ...) or one
of its top-level modules (plugin.studyindex, ...). The graph is read from the
source with ast: the imports of plugin.* that a module makes when it is loaded
(its top-level statements; an import inside a function runs later and is left
out), so no module is imported to draw it.
"""

import ast
import pathlib

PLUGIN = pathlib.Path(__file__).resolve().parent.parent / "plugin"


def module_names():
    """Dotted name -> path of every module under plugin/ (a package by its __init__)."""
    names = {}
    for path in sorted(PLUGIN.rglob("*.py")):
        parts = path.relative_to(PLUGIN.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_at_load(name, path, known):
    """The plugin modules that loading ``name`` imports by name. A submodule's package
    __init__ runs first too, but it is left out: a package that re-exports its
    submodules would otherwise be a cycle with each of them."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for statement in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(statement, ast.Import):
            found.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            base = statement.module or ""
            if statement.level:
                anchor = package.split(".")[: len(package.split(".")) - statement.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from plugin.orders import fields` imports the module plugin.orders.fields
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in statement.names)
    return {target for target in found if target in known and target != name}


def module_graph():
    known = module_names()
    return {name: imported_at_load(name, path, known) for name, path in known.items()}


def part_of(module):
    """plugin.orders.service -> plugin.orders; plugin.studyindex stays itself."""
    return ".".join(module.split(".")[:2])


def part_graph(modules):
    parts = {}
    for module, targets in modules.items():
        parts.setdefault(part_of(module), set()).update(
            part_of(target) for target in targets if part_of(target) != part_of(module)
        )
    return parts


def cycles(graph):
    """Every elementary cycle, each once, as a tuple starting from its smallest node."""
    found = set()

    def walk(start, node, path, on_path):
        for target in graph.get(node, ()):
            if target == start:
                found.add(tuple(path))
            elif target > start and target not in on_path:
                walk(start, target, [*path, target], on_path | {target})

    for start in sorted(graph):
        walk(start, start, [start], {start})
    return found


def named(cycle):
    return " -> ".join((*cycle, cycle[0]))


def test_no_module_imports_itself_round_a_cycle():
    found = cycles(module_graph())
    assert not found, "import cycles between modules: " + "; ".join(named(c) for c in sorted(found))


def test_no_cycle_between_parts():
    found = cycles(part_graph(module_graph()))
    assert not found, "import cycles between plugin's parts: " + "; ".join(named(c) for c in sorted(found))


def test_the_graph_sees_imports():
    """The walk itself: a module's top-level imports are edges, a function's are not."""
    graph = module_graph()
    assert "plugin.orders.models" in graph["plugin.orders.arrivals"]
    assert "plugin.orders.arrivals" in graph["plugin.studyindex"]
    assert "plugin.db" in graph["plugin.app"]  # `from plugin import db`
    assert part_graph(graph)["plugin.mpps"] >= {"plugin.orders", "plugin.db"}
