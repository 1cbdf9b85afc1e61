"""Can this Python run the recipe's stages? One line naming the fix when it cannot (run.sh calls it first).

Usage: python local/check_env.py STAGE STOP_STAGE
"""
import importlib
import shutil
import sys

# What each stage imports: stage 0 prepares the data with musdb, stage 1 trains with Asteroid's
# System on PyTorch Lightning and Hydra, stage 2 scores with museval, stage 3 writes the Hub folder.
STAGE_MODULES = {
    0: ["asteroid_unet", "soundfile", "musdb"],
    1: ["asteroid_unet", "hydra", "pytorch_lightning", "asteroid.engine", "librosa"],
    2: ["asteroid_unet.evaluate", "museval"],
    3: ["asteroid_unet.hub"],
}
INSTALL = ("install the recipe's packages into a venv with pip install '.[train]' from the asteroid-unet folder, "
           "then activate it or pass --python VENV/bin/python")


def problem(stage: int, stop_stage: int) -> str:
    """Why the stages cannot run with this Python, or an empty string."""
    stages = [s for s in STAGE_MODULES if stage <= s <= stop_stage]
    if any(s in (0, 2) for s in stages) and not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        return "ffmpeg and ffprobe are not on the PATH (musdb and museval need them): install ffmpeg, " \
               "e.g. sudo apt-get install ffmpeg"
    for name in (m for s in stages for m in STAGE_MODULES[s]):
        try:
            importlib.import_module(name)
        except Exception as err:  # a missing package, or one that fails inside (pkg_resources in torchmetrics)
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            return f"{sys.executable} cannot import {name} ({reason}): {INSTALL}"
    return ""


if __name__ == "__main__":
    found = problem(int(sys.argv[1]), int(sys.argv[2]))
    if found:
        sys.exit(f"run.sh: {found}")
