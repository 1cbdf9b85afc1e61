"""Installs asteroid_unet_autoregister.pth next to the package (everything else is in pyproject.toml)."""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "asteroid_unet_autoregister.pth"


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        self.copy_file(PTH, os.path.join(self.build_lib, PTH))

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH)]


setup(cmdclass={"build_py": BuildPyWithPth})
