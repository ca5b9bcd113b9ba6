"""The tests mirror the package tree, so the test of a module is found from the module's path."""

from __future__ import annotations

import re

from harness.paths import ROOT

#: Test folders that test across packages rather than one of them.
ACROSS_PACKAGES = {"integration", "reliability"}
#: Top-level tests: the command line as a whole, the deployment files and the layout itself.
TOP_LEVEL = {"test_cli.py", "test_cli_bad_input.py", "test_compose.py", "test_import_graph.py",
             "test_layout.py"}  # fmt: skip


def test_every_test_folder_mirrors_a_source_folder() -> None:
    tests = ROOT / "tests"
    misplaced = []
    for path in tests.rglob("test_*.py"):
        folder = path.parent.relative_to(tests)
        if folder.parts and folder.parts[0] in ACROSS_PACKAGES:
            continue
        if not folder.parts:
            if path.name not in TOP_LEVEL:
                misplaced.append(str(path.relative_to(ROOT)))
            continue
        if not (ROOT / folder).is_dir():
            misplaced.append(str(path.relative_to(ROOT)))
    assert misplaced == [], "tests outside the tree of what they test"


def test_no_test_or_benchmark_edits_the_import_path() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("tests", "benchmarks", "harness")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"sys\.path\s*(\.\w+\(|\[|\+?=)", path.read_text())
    ]
    assert offenders == []


def test_test_modules_import_no_other_test_module() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        for line in path.read_text().splitlines()
        if line.lstrip().startswith(("from test_", "import test_"))
    ]
    assert offenders == []
