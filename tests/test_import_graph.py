"""The layout's rules: one import package; physics knows no stream, store or trainer; the service
installs and imports no torch, lenstronomy, matplotlib or tqdm (``docs/import_graph.py``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

from harness.paths import ROOT


def _import_graph_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "docs" / "import_graph.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_breaks_a_layout_rule() -> None:
    script = _import_graph_script()
    assert script.violations(script.imports_by_package(ROOT)) == []


def test_the_rules_catch_a_forbidden_import() -> None:
    script = _import_graph_script()
    graph = {"model": {"db": {"model/x.py"}}, "consumer": {"torch": {"consumer/y.py"}}}
    assert script.violations(graph) == ["model/x.py -> db", "consumer/y.py -> torch"]


def test_the_documented_graph_is_the_current_one() -> None:
    script = _import_graph_script()
    table = script.markdown(script.imports_by_package(ROOT))
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert f"<!-- import-graph -->\n{table}\n<!-- /import-graph -->" in doc


def test_every_service_module_imports_without_the_optional_packages() -> None:
    # Block the packages the service image leaves out, then import every module of the service.
    modules = sorted(
        "lenscast." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for package in ("model", "consumer", "db")
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )
    # A None entry in sys.modules makes a package look uninstalled (find_spec gives None).
    code = f"""
import importlib, sys
for blocked in ('torch', 'lenstronomy', 'matplotlib', 'tqdm'):
    sys.modules[blocked] = None
for name in {modules!r}:
    importlib.import_module(name)
print(len({modules!r}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(modules) > 30


def test_installing_adds_one_import_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["lenscast*"]
    for package in ("model", "consumer", "db", "trainer", "tools", "plotting"):
        link = ROOT / "lenscast" / package
        assert link.is_symlink()
        assert link.resolve() == (ROOT / package).resolve()
    base = config["project"]["dependencies"]
    assert not [d for d in base if d.split(">")[0].split("=")[0] in ("matplotlib", "tqdm", "torch")]


def test_a_users_own_model_module_does_not_shadow_lenscast(tmp_path: Path) -> None:
    # A user's model.py and db/ next to the working directory: `python -m lenscast solve` works.
    (tmp_path / "model.py").write_text("raise RuntimeError('the user model was imported')\n")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "__init__.py").write_text("raise RuntimeError('the user db was imported')\n")
    line = '{"theta_e": 1.0, "e1": 0.0, "e2": 0.0, "source_x": 0.1, "source_y": 0.0}\n'
    out = subprocess.run(
        [sys.executable, "-m", "lenscast", "solve"],
        input=line, capture_output=True, text=True, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "image" in out.stdout
