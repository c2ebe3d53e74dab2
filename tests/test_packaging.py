"""Installable: `pip install .` brings `sae` with its runtime dependencies (the one list in requirements.txt) and
a `sae` console script. Checked on a wheel built from a copy of the tracked files (no network: the installed
setuptools builds it)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


def test_dependencies_are_requirements_txt_and_there_is_a_console_script():
    from setuptools.config.pyprojecttoml import read_configuration

    project = read_configuration(ROOT / "pyproject.toml", expand=True, ignore_option_errors=False)["project"]
    assert project["dependencies"] == requirements()
    assert project["scripts"] == {"sae": "sae.cli:main"}
    assert "torch==2.13.0" in project["dependencies"]  # pinned: an unpinned torch pulls CUDA builds


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file() and not name.startswith(("docs/", "bench/results")):
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(out), str(src)], check=True, capture_output=True,
                   timeout=300)
    (found,) = out.glob("*.whl")
    return found


def test_the_wheel_holds_every_part_the_dependencies_and_the_script(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        metadata, entry_points = zf.read(meta).decode(), zf.read(entry).decode()
    parts = {p.parent.name for p in (ROOT / "sae").glob("*/__init__.py")}
    for part in parts:
        assert f"sae/{part}/__init__.py" in names, part
    assert {"sae/cli/__init__.py", "sae/cli/parser.py", "sae/cli/commands.py", "sae/__main__.py"} <= names
    requires = [ln.split(": ", 1)[1] for ln in metadata.splitlines() if ln.startswith("Requires-Dist: ")]
    assert sorted(r.replace(" ", "") for r in requires) == sorted(r.replace(" ", "") for r in requirements())
    assert "sae = sae.cli:main" in entry_points


def test_usage_names_the_program_as_it_was_called(monkeypatch):
    from sae.cli import build_parser

    monkeypatch.setattr(sys, "argv", ["/venv/bin/sae", "train"])
    assert build_parser().format_usage().startswith("usage: sae ")
    monkeypatch.setattr(sys, "argv", ["/repo/sae/__main__.py", "train"])
    assert build_parser().format_usage().startswith("usage: python -m sae ")
