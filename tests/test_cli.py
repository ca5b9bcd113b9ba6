"""The ``lenscast`` dispatcher: help, lazy imports, and clean errors for an unreachable database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import ROOT
from lenscast.cli import SUBCOMMANDS, main


def test_no_subcommand_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("command", ["query", "migrate"])
def test_unreachable_database_is_one_line_without_the_password(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 9 (discard) on loopback has no PostgreSQL: the connection is refused at once.
    url = "postgresql+psycopg2://astro:hunter2-secret@127.0.0.1:9/results"
    assert main([command, "--db", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lenscast {command}: database unreachable:")
    assert "Traceback" not in err
    assert "hunter2-secret" not in err


def test_consume_path_does_not_import_torch_or_lenstronomy() -> None:
    code = (
        "import sys; from lenscast.cli import _build_parser; "
        "_build_parser(['consume']); "
        "print(sorted(m for m in ('torch', 'lenstronomy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lenscast {pyproject['project']['version']}"


def test_pyproject_licence_is_an_spdx_expression() -> None:
    import tomllib

    from packaging.licenses import canonicalize_license_expression

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    licence = pyproject["project"]["license"]
    assert isinstance(licence, str)  # PEP 639: an SPDX expression, not a {text = ...} table
    assert canonicalize_license_expression(licence) == licence


def test_demo_hint_names_the_checkout_or_the_pypi_extra(tmp_path: Path) -> None:
    from lenscast.tools.local_broker import demo_install_hint

    installed = tmp_path / "site-packages" / "consumer"
    installed.mkdir(parents=True)
    assert demo_install_hint(installed) == "pip install 'lenscast[demo]'"
    (tmp_path / "site-packages" / "pyproject.toml").write_text("")
    assert demo_install_hint(installed) == "pip install -e '.[demo]'"
def test_a_subcommand_without_its_extra_names_the_extra() -> None:
    # The service image has no torch or onnx: `lenscast quantize` says which extra installs them.
    code = (
        "import sys; sys.modules.update(torch=None, onnx=None, lenstronomy=None); "
        "from lenscast.cli import main; "
        "raise SystemExit(main(['quantize', '--model', 'm.onnx', '--calibration', 'v', '--out', "
        "'o.onnx', '--name', 'n', '--version', '1']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1
    err = out.stderr.strip()
    assert err.startswith("lenscast quantize: needs "), err
    assert err.endswith("pip install 'lenscast[train]'")
