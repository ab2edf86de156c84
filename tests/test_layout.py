"""The package's layout: four packages by role whose imports run one way, and no import circles.

Every module of ``revgnn/`` is read with ``ast``; each import, at the top or inside a function, absolute or relative,
is resolved to the module it loads (``from revgnn import RevGNN`` through the lazy export map of ``revgnn/__init__``
to ``revgnn.nn.models``). Imports made by ``importlib`` with a computed name (the CLI's subcommands) are not read.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "revgnn"
ROOMS = ("nn", "data", "training", "measure", "commands", "book")  # the rest of revgnn/ is "top"
FORBIDDEN = {  # package -> what it must not import from ("top": revgnn/__init__, __main__, cli, official)
    "nn": ("training", "measure", "book", "commands", "top"),
    "data": ("training", "measure", "book", "commands", "top"),
    "training": ("measure", "book", "commands", "top"),
    "measure": ("book", "commands", "top"),
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        modules[name.removesuffix(".__init__")] = path
    return modules


def room(module: str) -> str:
    """The package of ``revgnn`` a module lies in (``revgnn.nn.native`` -> ``nn``); a top-level module is its own
    (``revgnn.cli`` -> ``cli``, ``revgnn`` -> ``revgnn``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def kind(module: str) -> str:
    """:func:`room`, with every top-level module counted as ``top``."""
    return room(module) if room(module) in ROOMS else "top"


def _exports(path: Path, package: str) -> dict[str, str]:
    """A package's lazy export map (``_EXPORTS = {module: (names, ...)}``) as {name: module}."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return {n: f"{package}.{m}" for m, names in ast.literal_eval(node.value).items() for n in names}
    return {}


def _nearest(name: str, modules) -> str | None:
    """The module ``name`` loads: itself, else its longest prefix that is a module (an attribute of a module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports() -> dict[str, dict[str, int]]:
    """{module: {imported module: first line}} over every module of revgnn, self-imports left out."""
    modules = _modules()
    exports = {pkg: _exports(path, pkg) for pkg, path in modules.items() if path.name == "__init__.py"}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [_nearest(a.name, modules) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                for a in node.names:
                    if f"{base}.{a.name}" in modules:
                        targets.append(f"{base}.{a.name}")
                    elif a.name in exports.get(base, {}):
                        targets.append(exports[base][a.name])
                    else:
                        targets.append(_nearest(base, modules))
            for t in targets:
                if t is not None and t != name:
                    deps.setdefault(t, node.lineno)
        graph[name] = deps
    return graph


def test_the_reader_sees_imports_inside_functions_relative_ones_and_the_lazy_api():
    graph = imports()
    assert "revgnn.nn.models" in graph["revgnn.nn.presets"], "build_model's import inside the function is read"
    assert "revgnn.training.budget" in graph["revgnn.training.loop"], "``from . import budget`` is read"
    assert "revgnn.nn.presets" in graph["revgnn.book.sources"], "``from revgnn import ModelConfig`` is resolved"
    assert "revgnn.book.params" in graph["revgnn.book.build"], "relative imports within a package are read"
    assert sum(map(len, graph.values())) > 100, "the reader finds the package's imports"


@pytest.mark.parametrize("lower", sorted(FORBIDDEN))
def test_imports_run_one_way(lower):
    """nn and data import nothing from training, measure, the book, the commands or the top-level modules; training
    nothing from measure, the book, the commands or the top; measure nothing from the book, the commands or the top."""
    graph = imports()
    mine = [m for m in graph if kind(m) == lower]
    assert mine, f"revgnn.{lower} holds modules"
    upward = [f"{m} line {line} imports {dep}" for m in mine for dep, line in graph[m].items()
              if kind(dep) in FORBIDDEN[lower]]
    assert not upward, (f"revgnn.{lower} imports nothing from {', '.join(FORBIDDEN[lower])}; it does: "
                        + "; ".join(upward))


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state:
                found = visit(dep, [*path, dep])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_no_import_circles_between_modules():
    circle = _circle({m: set(deps) for m, deps in imports().items()})
    assert circle is None, "no module imports itself through others: " + " -> ".join(circle or [])


def test_no_import_circles_between_packages():
    rooms: dict[str, set[str]] = {}
    for m, deps in imports().items():
        rooms.setdefault(room(m), set()).update(room(d) for d in deps if room(d) != room(m))
    circle = _circle(rooms)
    assert circle is None, "the packages import one way, without a circle: " + " -> ".join(circle or [])


def test_synthetic_takes_rocauc_from_metrics_not_from_datasets():
    synthetic = imports()["revgnn.data.synthetic"]
    assert "revgnn.data.metrics" in synthetic and "revgnn.data.datasets" not in synthetic, \
        "synthetic imports rocauc from metrics, not from datasets"


def test_book_modules_import_one_way():
    order = ["params", "records", "offline", "claims", "figures", "prose", "sources", "trace", "cache", "environment",
             "report", "execute", "launch", "extension", "browser", "build"]
    graph = imports()
    for i, name in enumerate(order):
        for dep in graph[f"revgnn.book.{name}"]:
            if dep.startswith("revgnn.book."):
                assert order.index(dep.rsplit(".", 1)[1]) < i, f"revgnn.book.{name} imports the higher {dep}"


def test_the_top_of_the_package_holds_at_most_six_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 6, f"at most six modules at the top of revgnn/, the rest in packages by role: {top}"
    assert all((PACKAGE / r / "__init__.py").is_file() for r in ROOMS), f"revgnn/ has the packages {ROOMS}"


@pytest.mark.parametrize("package", ROOMS)
def test_each_package_says_what_it_holds_and_what_it_may_import(package):
    doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))
    assert doc and "Imports:" in doc, f"revgnn/{package}/__init__.py opens with what it holds and an 'Imports:' line"
