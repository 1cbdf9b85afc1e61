"""Install layout: a light core, the auto-registration .pth recorded by pip in regular and
editable wheels alike, and a .pth that stays harmless if the package is gone."""
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PTH = "asteroid_unet_autoregister.pth"
HEAVY = ("speechbrain", "hydra", "musdb", "museval", "pytorch_lightning", "lightning", "librosa", "mido", "stempeg")


def test_core_dependencies_are_light_lower_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = project["dependencies"]
    assert not any(name in dep.lower().replace("-", "_") for dep in core for name in HEAVY)
    assert not any("==" in dep for dep in core)  # exact versions live in constraints.txt
    assert {"train", "speechbrain", "eval", "test"} <= set(project["optional-dependencies"])
    pins = (ROOT / "constraints.txt").read_text()
    for package in ("torch==", "asteroid==", "speechbrain==", "museval==", "hydra-core=="):
        assert f"\n{package}" in pins


def test_separation_path_imports_no_training_or_evaluation_toolkit():
    """``asteroid-unet separate`` and Asteroid's file path load only core dependencies."""
    code = ("import sys, asteroid_unet.cli, asteroid_unet.separate, asteroid.scripts.asteroid_cli; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """A regular and an editable wheel, built by setuptools' PEP 517 hooks from a copy of the sources."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md", PTH, "asteroid_unet_hook.py"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "asteroid_unet", src / "asteroid_unet", ignore=shutil.ignore_patterns("__pycache__"))
    out = src / "dist"
    names = []
    for hook in ("build_wheel", "build_editable"):  # one process each, as a frontend does
        code = f"import sys; from setuptools import build_meta; print('WHEEL', build_meta.{hook}(sys.argv[1]))"
        run = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        names.append(next(line for line in run.stdout.splitlines() if line.startswith("WHEEL ")).split()[1])
    regular, editable = names
    return out / regular, out / editable


@pytest.mark.parametrize("kind", ["regular", "editable"])
def test_wheel_carries_the_pth_in_its_record(wheels, kind):
    wheel = wheels[0 if kind == "regular" else 1]
    with zipfile.ZipFile(wheel) as z:
        assert z.read(PTH) == (ROOT / PTH).read_bytes()
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        assert any(line.startswith(PTH + ",") for line in z.read(record).decode().splitlines())


def test_pth_line_is_harmless_without_the_package(tmp_path):
    """Left behind by a manual copy, it must not break interpreter start-up: no output, exit 0."""
    line = (ROOT / PTH).read_text().strip()
    out = subprocess.run([sys.executable, "-S", "-c", line], cwd=tmp_path, capture_output=True, text=True)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
