"""First-use dependency checks, install-failure messages and library reloading (Qt-free helpers)."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from WMHSegmenterLib.scene.dependencies import (
    REQUIREMENTS_FILE,
    TORCH_REQUIREMENT,
    CapturedOutput,
    explain_install_failure,
    missing_requirements,
    read_requirements,
    unmet,
)
from WMHSegmenterLib.scene.reloading import reload_package

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def test_requirements_file_lists_engine_dependencies_but_never_torch():
    names = {Requirement(line).name.lower() for line in read_requirements()}
    assert "torch" not in names and "safetensors" in names
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {Requirement(line).name.lower() for line in project["dependencies"]}
    assert names <= declared
    torch = next(Requirement(line) for line in project["dependencies"] if line.startswith("torch"))
    assert Requirement(TORCH_REQUIREMENT).specifier == torch.specifier


def test_requirements_are_met_in_the_development_environment():
    assert REQUIREMENTS_FILE.is_file()
    assert missing_requirements() == []
    assert unmet(TORCH_REQUIREMENT) is None


def test_unmet_requirements_say_why():
    assert unmet("surely-not-an-installed-package-xyz>=1") == "missing"
    assert unmet("numpy<1").startswith("version ")
    assert missing_requirements(["numpy", "numpy<1"]) == ["numpy<1"]
    with pytest.raises(ValueError, match="invalid requirement"):
        unmet("numpy >>> 2")


def test_read_requirements_skips_comments_and_blank_lines(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n\nsafetensors>=0.4  # weights\n  scipy\n")
    assert read_requirements(path) == ["safetensors>=0.4", "scipy"]


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        (
            "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device",
            "disk is full",
        ),
        (
            "WARNING: Retrying ... NewConnectionError: Temporary failure in name resolution",
            "could not be reached",
        ),
        ("ERROR: [Errno 13] Permission denied: '/opt/Slicer/lib/Python'", "not writable"),
        ("ERROR: something else entirely", "Python console"),
    ],
)
def test_install_failures_get_advice_a_user_can_follow(error, advice):
    message = explain_install_failure(["safetensors"], error)
    assert message.startswith("Could not install safetensors.")
    assert advice in message
    assert error.splitlines()[-1] in message


def test_captured_output_keeps_and_echoes_what_pip_prints():
    echo = io.StringIO()
    output = CapturedOutput(echo)
    with contextlib.redirect_stdout(output):
        print("Collecting safetensors")
        print("ERROR: No space left on device")
    assert output.text == echo.getvalue() == "Collecting safetensors\nERROR: No space left on device\n"
    assert "disk is full" in explain_install_failure(["safetensors"], output.text)


def test_reload_package_gives_fresh_consistent_modules(tmp_path, monkeypatch):
    package = tmp_path / "reloadme"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("VALUE = 1\n")
    (package / "b.py").write_text("from .a import VALUE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    import reloadme.b

    assert reloadme.b.VALUE == 1
    (package / "a.py").write_text("VALUE = 'changed'\n")
    assert reload_package("reloadme") == ["reloadme", "reloadme.a", "reloadme.b"]
    assert sys.modules["reloadme.b"].VALUE == "changed"
    for name in ("reloadme", "reloadme.a", "reloadme.b"):
        monkeypatch.delitem(sys.modules, name)
