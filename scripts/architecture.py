"""The layering rule, checked over the import graph, and the figures issues 28 and 41 report.

`python -m scripts.architecture` prints modules and lines per package, the imports that
climb back up a layer, and the functions over 50 lines; `--sizes` prints the largest
modules and classes (lines, methods) against their budgets. `tests/test_layers.py` holds
the code to the rules: no import climbs, no module of shared/ or class over its budget
beyond the ones listed here.

A layer may import from the layers below it, and a package from itself. Packages that
share a layer do not import each other, except in the bottom layer (basics: small
modules that build on one another, with no cycle).
"""

from __future__ import annotations

import ast
import functools
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("process entry", ("main",)),
    ("entry points", ("functions", "scripts")),
    ("composition root", ("shared.services",)),
    ("application", ("shared.app",)),
    ("processing", ("shared.pipeline",)),
    ("delivery", ("shared.queue",)),
    ("search", ("shared.search",)),
    ("task records", ("shared.tasks",)),
    ("understanding", ("shared.tagging",)),
    ("resources", ("shared.accounts", "shared.teams", "shared.video", "shared.storage")),
    ("basics", ("shared", "shared.settings")),
]
"""Top to bottom. A module belongs to the longest package prefix named here."""

BASICS = "basics"
LONG_FUNCTION_LINES = 50
MODULE_LINE_BUDGET = 400
"""Lines of one module of shared/: about what a newcomer reads in one sitting."""
CLASS_METHOD_BUDGET = 15
"""Methods of one class of shared/."""

OVER_BUDGET_MODULES = frozenset({
    "shared.accounts.pool", "shared.tasks.rollups", "shared.tasks.models",
    "shared.accounts.importer", "shared.pipeline.batch_collector", "shared.tasks.store",
    "shared.pipeline.stages",
})
"""Modules of shared/ over MODULE_LINE_BUDGET when it was set (issue 41, measured in
docs/architecture.md "Sizes"): listed, not yet split. No other module may grow past it."""

OVER_BUDGET_CLASSES = frozenset({
    "shared.accounts.pool.AccountPool", "shared.tasks.store.TaskStore",
    "shared.tasks.batches.BatchStore",
    "shared.tasks.queries.TaskQueries", "shared.tasks.gemini_jobs.GeminiJobStore",
    "shared.storage.LocalStorage",
})
"""Classes of shared/ over CLASS_METHOD_BUDGET when it was set (issue 41): listed, not yet
split. (`Settings`, 21 methods then, is now its groups: shared/settings/.)"""


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


@functools.cache
def parsed(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once per run (the reports and the layer tests walk
    the same files several times)."""
    return ast.parse(path.read_text(), str(path))


def source_files(root: Path = ROOT) -> list[Path]:
    files = [root / "main.py", *sorted((root / "shared").rglob("*.py")),
             *sorted((root / "functions").rglob("*.py")), *sorted((root / "scripts").rglob("*.py"))]
    return [f for f in files if f.exists() and "migrations" not in f.parts]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """The package a module belongs to: the longest prefix named in LAYERS. `shared` itself
    holds only the modules directly in shared/: a new sub-package is in no layer until
    LAYERS names it."""
    best = ""
    for _, units in LAYERS:
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and len(unit) > len(best):
                best = unit
    if best == "shared" and module.count(".") > 1:
        return module.rpartition(".")[0]
    return best or module


def layer_of(module: str) -> int:
    unit = unit_of(module)
    for rank, (_, units) in enumerate(LAYERS):
        if unit in units:
            return rank
    raise KeyError(f"{module} is in no layer: add its package to LAYERS")


def imports(path: Path, module: str, known: set[str]) -> list[tuple[str, int]]:
    """The project modules `path` imports, with the line, type-checking imports included."""
    found = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and name != "shared":
                found.append((name, node.lineno))
                break
    return found


def climbing(root: Path = ROOT) -> list[Arrow]:
    """Imports that go up a layer, or sideways between packages of one layer."""
    files = {module_name(f, root): f for f in source_files(root)}
    known = set(files) | {"shared"}
    arrows = []
    for module, path in files.items():
        for target, line in imports(path, module, known):
            here, there = layer_of(module), layer_of(target)
            sideways = (here == there and unit_of(module) != unit_of(target)
                        and LAYERS[here][0] != BASICS)
            if there < here or sideways:
                arrows.append(Arrow(module, target, line))
    return arrows


def long_functions(root: Path = ROOT) -> tuple[int, list[str]]:
    count, long = 0, []
    for path in source_files(root):
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                count += 1
                lines = node.end_lineno - node.lineno + 1
                if lines > LONG_FUNCTION_LINES:
                    long.append(f"{module_name(path, root)}.{node.name} ({lines} lines)")
    return count, long


def report(root: Path = ROOT) -> str:
    modules: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    for path in source_files(root):
        unit = unit_of(module_name(path, root))
        modules[unit] += 1
        lines[unit] += len(path.read_text().splitlines())
    out = ["| layer | package | modules | lines |", "|---|---|---|---|"]
    by_layer = defaultdict(list)
    for unit in modules:
        by_layer[layer_of(unit)].append(unit)
    for rank in sorted(by_layer):
        for unit in sorted(by_layer[rank]):
            out.append(f"| {LAYERS[rank][0]} | {unit} | {modules[unit]} | {lines[unit]} |")
    arrows = climbing(root)
    total, long = long_functions(root)
    out += ["", f"imports that climb back up: {len(arrows)}", *(f"  {a}" for a in arrows),
            f"functions: {total}, over {LONG_FUNCTION_LINES} lines: {len(long)}"
            f" ({100 * len(long) / max(total, 1):.1f}%)", *(f"  {f}" for f in long)]
    return "\n".join(out)


@dataclass(frozen=True)
class Size:
    name: str
    lines: int
    methods: int = 0


def module_sizes(root: Path = ROOT) -> list[Size]:
    """Every module, largest first."""
    sizes = [Size(module_name(path, root), len(path.read_text().splitlines()))
             for path in source_files(root)]
    return sorted(sizes, key=lambda size: (-size.lines, size.name))


def class_sizes(root: Path = ROOT) -> list[Size]:
    """Every class with its lines and the methods defined in its body, largest first."""
    sizes = []
    for path in source_files(root):
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.ClassDef):
                methods = sum(isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                              for item in node.body)
                sizes.append(Size(f"{module_name(path, root)}.{node.name}",
                                  node.end_lineno - node.lineno + 1, methods))
    return sorted(sizes, key=lambda size: (-size.lines, size.name))


def over_budget(root: Path = ROOT) -> tuple[list[Size], list[Size]]:
    """The modules of shared/ over MODULE_LINE_BUDGET lines and the classes of shared/ over
    CLASS_METHOD_BUDGET methods."""
    modules = [s for s in module_sizes(root)
               if s.name.startswith("shared.") and s.lines > MODULE_LINE_BUDGET]
    classes = [s for s in class_sizes(root)
               if s.name.startswith("shared.") and s.methods > CLASS_METHOD_BUDGET]
    return modules, classes


def sizes_report(root: Path = ROOT, top: int = 8) -> str:
    """The figures issue 41 measures before and after: the largest modules and classes,
    methods per class, the modules and classes over budget, long functions, climbing
    imports."""
    modules, classes = module_sizes(root), class_sizes(root)
    by_methods = sorted(classes, key=lambda size: (-size.methods, size.name))
    big_modules, busy_classes = over_budget(root)
    total, long = long_functions(root)
    out = ["largest modules (lines): " + ", ".join(f"{s.name} {s.lines}" for s in modules[:top]),
           "largest classes (lines, methods): " + ", ".join(
               f"{s.name} {s.lines}/{s.methods}" for s in classes[:top]),
           "most methods: " + ", ".join(f"{s.name} {s.methods}" for s in by_methods[:top]),
           f"modules of shared/ over {MODULE_LINE_BUDGET} lines: {len(big_modules)}",
           *(f"  {s.name} ({s.lines})" for s in big_modules),
           f"classes of shared/ over {CLASS_METHOD_BUDGET} methods: {len(busy_classes)}",
           *(f"  {s.name} ({s.methods})" for s in busy_classes),
           f"functions over {LONG_FUNCTION_LINES} lines: {len(long)} of {total}",
           f"imports that climb: {len(climbing(root))}"]
    return "\n".join(out)


def package_report(package: str, root: Path = ROOT) -> str:
    """One package's modules (lines) and classes (lines/methods), in file order."""
    inside = [s for s in module_sizes(root)
              if s.name == package or s.name.startswith(package + ".")]
    classes = [s for s in class_sizes(root) if s.name.startswith(package + ".")]
    out = [f"{package}: {len(inside)} modules, {sum(s.lines for s in inside)} lines"]
    for module in sorted(inside, key=lambda size: size.name):
        owned = [c for c in classes if c.name.rpartition(".")[0] == module.name]
        out.append(f"  {module.name} {module.lines}" + "".join(
            f"; {c.name.rpartition('.')[2]} {c.lines}/{c.methods}" for c in owned))
    return "\n".join(out)


def main(argv: list[str]) -> None:
    """`[ROOT]`: the layers; `--sizes [ROOT]`: the sizes; `--package NAME`: one package's."""
    args = list(argv)
    package = args.pop(args.index("--package") + 1) if "--package" in args else None
    sizes = "--sizes" in args
    paths = [arg for arg in args if arg not in ("--sizes", "--package")]
    root = Path(paths[0]).resolve() if paths else ROOT
    if package:
        print(package_report(package, root))
    else:
        print(sizes_report(root) if sizes else report(root))


if __name__ == "__main__":
    main(sys.argv[1:])
