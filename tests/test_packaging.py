"""Install layout, checked on wheels built by the real backend: a light core, a build that needs
neither torch nor the network, the auto-registration .pth recorded in regular and editable wheels
alike (so ``pip uninstall`` removes it), and a .pth that stays harmless if the package is gone.
A full ``pip install .`` / ``pip uninstall`` round trip in a fresh venv without constraints is ``.ci/first_contact.sh``."""
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PTH = "asteroid_unet_autoregister.pth"
HOOK = "asteroid_unet_hook.py"
HEAVY = ("speechbrain", "hydra", "musdb", "museval", "pytorch_lightning", "lightning", "librosa", "mido", "stempeg")
# Run as a PEP 517 frontend does, one process per hook, with every socket connection refused.
BUILD = """import socket, sys
def refuse(*args): raise OSError("the build tried to use the network")
socket.socket.connect = socket.socket.connect_ex = refuse
import hatchling.build as backend
name = getattr(backend, sys.argv[1])(sys.argv[2])
print("WHEEL", name, "torch" in sys.modules)
"""


def test_core_dependencies_are_light_lower_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = project["dependencies"]
    assert not any(name in dep.lower().replace("-", "_") for dep in core for name in HEAVY)
    assert not any("==" in dep for dep in core)  # exact versions live in constraints.txt
    assert {"train", "speechbrain", "eval", "test"} <= set(project["optional-dependencies"])
    pins = (ROOT / "constraints.txt").read_text()
    for package in ("torch==", "asteroid==", "speechbrain==", "museval==", "hydra-core=="):
        assert f"\n{package}" in pins


def test_separation_path_imports_only_what_separation_needs():
    """``asteroid-unet separate``, the API and Asteroid's file path load only core dependencies: no
    training or evaluation toolkit, not the page (its module sets Gradio's environment variables and
    pulls in Gradio: only ``app`` loads it), not norbert (a test dependency only)."""
    unwanted = (*HEAVY, "gradio", "norbert")
    code = ("import sys, asteroid_unet.cli, asteroid_unet.separate, asteroid.scripts.asteroid_cli; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {unwanted!r} or m == 'asteroid_unet.app'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert (out.returncode, out.stdout.strip()) == (0, "[]"), out.stderr[-2000:]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A copy of the sources as a fresh clone has them, plus a stand-in for weights `make weights` leaves there."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", PTH, HOOK):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "asteroid_unet", src / "asteroid_unet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pth"))  # the real weights are 60 MB
    for name in ("unet_default.pth", "spleeter_2stems.pth"):
        (src / "asteroid_unet" / "weights" / name).write_bytes(b"weights")
    return src


@pytest.fixture(scope="module")
def wheels(sources):
    """The regular and the editable wheel, built by the declared backend without torch or the network."""
    built = {}
    for kind, hook in (("regular", "build_wheel"), ("editable", "build_editable")):
        out = sources / "dist" / kind
        run = subprocess.run([sys.executable, "-c", BUILD, hook, str(out)], cwd=sources, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        _, name, imported_torch = next(line for line in run.stdout.splitlines() if line.startswith("WHEEL ")).split()
        assert imported_torch == "False", "the build imported torch"
        built[kind] = out / name
    return built


def test_the_build_backend_is_declared_in_pyproject_alone():
    system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    assert not (ROOT / "setup.py").exists()
    assert not any("<" in requirement for requirement in system["requires"])  # no upper pins on the build


def _files(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        recorded = {line.split(",")[0] for line in z.read(record).decode().splitlines()}
        return names, recorded, {n: z.read(n) for n in names if n.endswith(".pth") and "/" not in n}


def test_regular_wheel_holds_the_package_the_hook_and_no_built_weights(wheels, sources):
    names, recorded, pths = _files(wheels["regular"])
    modules = {p.relative_to(sources).as_posix() for p in (sources / "asteroid_unet").rglob("*.py")}
    assert modules <= names and HOOK in names
    assert {"asteroid_unet/weights/unet_default.pth", "asteroid_unet/weights/LICENSE-spleeter.txt"} <= names
    assert "asteroid_unet/weights/spleeter_2stems.pth" not in names  # built on first use, never shipped
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "egs/", "recipes/"))]
    assert pths == {PTH: (ROOT / PTH).read_bytes()} and PTH in recorded


def test_editable_wheel_records_the_pth_and_points_at_the_sources(wheels, sources):
    names, recorded, pths = _files(wheels["editable"])
    assert PTH in pths and PTH in recorded
    path_files = [n for n in pths if n != PTH]
    assert [set(pths[n].decode().split()) for n in path_files] == [{str(sources)}]
    assert sorted([*path_files, PTH])[-1] == PTH  # site reads .pth files in name order: the path comes first


@pytest.mark.parametrize("kind", ["regular", "editable"])
def test_installed_wheel_registers_unet_when_asteroid_is_imported(wheels, kind, tmp_path):
    """Unpacked into a site folder (what pip does), the .pth makes ``asteroid.models.get('UNet')`` work
    without ``import asteroid_unet``; the other installed packages come after it on sys.path, unprocessed."""
    site_dir = tmp_path / "site"
    with zipfile.ZipFile(wheels[kind]) as z:
        z.extractall(site_dir)
    code = (f"import site, sys; site.addsitedir({str(site_dir)!r}); "
            f"sys.path.append({sysconfig.get_paths()['purelib']!r}); "
            "import asteroid.models; unet = asteroid.models.get('UNet'); "
            "print(unet.__module__, sys.modules['asteroid_unet'].__file__)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    module, location = out.stdout.split()
    assert module == "asteroid_unet.model"
    assert Path(location).is_relative_to(site_dir if kind == "regular" else wheels[kind].parents[2])


def test_pth_line_is_harmless_without_the_package(tmp_path):
    """Left behind by a manual copy, it must not break interpreter start-up: no output, exit 0."""
    line = (ROOT / PTH).read_text().strip()
    out = subprocess.run([sys.executable, "-S", "-c", line], cwd=tmp_path, capture_output=True, text=True)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
