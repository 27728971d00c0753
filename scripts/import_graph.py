"""The project's import graph, checked against its layers.

Every module of ``gar_app/``, ``components/`` and ``app.py`` is parsed (never imported), and
every import counts: at the top, inside functions, under ``TYPE_CHECKING``. Reported:

- **cycles**: modules that import each other, directly or round a loop;
- **upward imports**: a module importing one on a higher layer than its own (see ``LAYERS``);
- **own-package imports**: a submodule importing a name from its enclosing package's
  ``__init__`` that the ``__init__`` does not define itself (a re-export: import it from the
  module that defines it), or any name when that ``__init__`` imports the submodule back (a
  hidden circle: ``gar_app.model.loading`` doing ``from gar_app.model import ...`` while
  ``gar_app.model`` loads ``loading``);
- **unplaced modules**: a module no entry of ``LAYERS`` covers. Place each new module on
  its layer here: that is where the design says what may use what.

A package ``__init__`` importing its own submodules is the one allowed exception.

Run: ``python scripts/import_graph.py`` (exit status 1 when anything is reported;
``--graph`` also prints every edge). ``tests/test_import_graph.py`` runs the same check.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("gar_app", "components", "app.py")

# Lowest first. A module may import from its own layer and any lower one, never a higher one.
# An entry is a module's name, or ``package.*`` for a package and everything in it; the most
# specific entry places a module, so one module of a package can sit below the rest of it.
Layers = list[tuple[str, list[str]]]  # (what the layer holds, its entries)
LAYERS: Layers = [
    (
        "foundations: errors, the region tags, the package itself, devices and dtypes, "
        "atomic result files, terminal progress",
        ["gar_app", "gar_app.errors", "gar_app.tags", "gar_app.devices", "gar_app.files", "gar_app.progress"],
    ),
    (
        "pixels and masks: images, COCO RLE, video frames, the region set and the marks "
        "a region is made from (the segmenter contract, segment.base)",
        ["gar_app.images", "gar_app.rle", "gar_app.video", "gar_app.regions", "gar_app.segment.base"],
    ),
    ("models: marks to masks (SAM, GrabCut), GAR itself", ["gar_app.segment.*", "gar_app.model.*"]),
    (
        "one image's state and its files: marks and undo, the conversation, the formats",
        ["gar_app.marking", "gar_app.conversation", "gar_app.formats.*"],
    ),
    (
        "sessions: one image's workspace, a video's tracks, GARBench",
        ["gar_app.workspace", "gar_app.tracking.*", "gar_app.eval.*"],
    ),
    (
        "services over sessions: the HTTP API, batch captioning, projects (a folder and its store)",
        ["gar_app.serve.*", "gar_app.batch.*", "gar_app.project.*"],
    ),
    ("the gar-app command", ["gar_app.cli.*", "gar_app.__main__"]),
    ("the page's pieces (Gradio)", ["components.*"]),
    ("the app: wiring the pieces together", ["app"]),
]


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: dict[str, int] = field(default_factory=dict)  # imported module -> first line
    # the names taken from each imported module (``from x import a, b``): module -> {name: line}
    names: dict[str, dict[str, int]] = field(default_factory=dict)
    defines: set[str] = field(default_factory=set)  # top-level names assigned, def'd or class'd here


def find_modules(repo: Path) -> dict[str, Module]:
    modules = {}
    for root in ROOTS:
        top = repo / root
        paths = [top] if top.is_file() else sorted(top.rglob("*.py"))
        for path in paths:
            parts = list(path.relative_to(repo).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            modules[name] = Module(name, path.relative_to(repo), is_package)
    return modules


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str, modules: dict[str, Module]) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _defined(tree: ast.Module) -> set[str]:
    """Names a module's own top-level code binds (not imports, not ``if`` blocks such as
    ``TYPE_CHECKING``)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def read_imports(module: Module, modules: dict[str, Module], repo: Path) -> None:
    tree = ast.parse((repo / module.path).read_text(), filename=str(module.path))
    module.defines = _defined(tree)
    for node in ast.walk(tree):
        targets: Iterable[tuple[str, str | None]] = ()
        if isinstance(node, ast.Import):
            targets = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            # ``from pkg import sub`` imports the submodule; ``from pkg import name`` the package
            targets = [
                (f"{source}.{alias.name}", None)
                if f"{source}.{alias.name}" in modules
                else (source, alias.name)
                for alias in node.names
            ]
        for target, name in targets:
            known = _known(target, modules)
            if known is not None and known != module.name:
                module.imports.setdefault(known, node.lineno)
                if name is not None:
                    module.names.setdefault(known, {}).setdefault(name, node.lineno)


def is_inside(name: str, package: str) -> bool:
    return name.startswith(package + ".")


def covers(entry: str, name: str) -> bool:
    if entry.endswith(".*"):
        package = entry[:-2]
        return name == package or is_inside(name, package)
    return name == entry


def layer_of(name: str, layers: Layers) -> int | None:
    """The layer of the most specific entry covering ``name`` (an exact name beats ``pkg.*``)."""
    best: tuple[tuple[bool, int], int] | None = None  # ((exact, length), layer)
    for number, (_title, entries) in enumerate(layers):
        for entry in entries:
            rank = (not entry.endswith(".*"), len(entry))
            if covers(entry, name) and (best is None or rank > best[0]):
                best = (rank, number)
    return None if best is None else best[1]


def allowed_edges(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Every import except a package ``__init__`` importing its own submodules."""
    return {
        name: {target for target in module.imports if not (module.is_package and is_inside(target, name))}
        for name, module in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(1000, 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


@dataclass
class Report:
    modules: dict[str, Module]
    layers: Layers
    unplaced: list[str]
    cycles: list[list[str]]
    upward: list[str]
    own_package: list[str]

    @property
    def problems(self) -> int:
        return len(self.unplaced) + len(self.cycles) + len(self.upward) + len(self.own_package)


def own_package_problems(module: Module, package: Module) -> list[str]:
    """Why ``module``'s import of its enclosing ``package`` is wrong, if it is."""
    found = []
    if module.name in package.imports:
        found.append(
            f"{module.path}:{module.imports[package.name]}: {module.name} imports {package.name}, which imports it back"
        )
    for name, line in sorted(module.names.get(package.name, {}).items()):
        if name not in package.defines:
            found.append(
                f"{module.path}:{line}: {module.name} imports {name} from its package {package.name}, "
                "which does not define it"
            )
    return found


def check(repo: Path = REPO, layers: Layers = LAYERS) -> Report:
    modules = find_modules(repo)
    for module in modules.values():
        read_imports(module, modules, repo)
    graph = allowed_edges(modules)
    unplaced = sorted(name for name in modules if layer_of(name, layers) is None)
    upward, own_package = [], []
    for name, targets in sorted(graph.items()):
        module = modules[name]
        for target in sorted(targets):
            if is_inside(name, target):
                own_package += own_package_problems(module, modules[target])
                continue
            low, high = layer_of(name, layers), layer_of(target, layers)
            if low is not None and high is not None and high > low:
                upward.append(
                    f"{module.path}:{module.imports[target]}: {name} (layer {low + 1}) imports {target} "
                    f"(layer {high + 1}: {layers[high][0]})"
                )
    return Report(modules, layers, unplaced, cycles(graph), upward, own_package)


def print_report(report: Report, show_graph: bool = False) -> None:
    out = sys.stdout
    if show_graph:
        for name, module in sorted(report.modules.items()):
            for target in sorted(module.imports):
                out.write(f"{name} -> {target}\n")
    out.write(f"{len(report.modules)} modules on {len(report.layers)} layers (lowest first):\n")
    for number, (title, entries) in enumerate(report.layers, 1):
        out.write(f"  {number}. {title}: {', '.join(entries)}\n")
    sections = [
        ("modules on no layer (add them to LAYERS in scripts/import_graph.py)", report.unplaced),
        ("cycles (modules that import each other)", [" <-> ".join(c) for c in report.cycles]),
        ("upward imports", report.upward),
        ("imports of a module's own package (import from the defining module)", report.own_package),
    ]
    for title, lines in sections:
        out.write(f"{len(lines)} {title}\n")
        for line in lines:
            out.write(f"  {line}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", action="store_true", help="also print every import edge")
    args = parser.parse_args(argv)
    report = check()
    print_report(report, args.graph)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
