"""Can this Python run the recipe's stages? One line naming the fix when it cannot (run.sh calls it first).

Only looks the packages up (``importlib.util.find_spec`` on top-level names), imports nothing, so
it costs a fraction of a second instead of the seconds that importing torch and Lightning take.

Usage: python local/check_env.py STAGE STOP_STAGE
"""
import importlib.util
import shutil
import sys

# What each stage imports: stage 0 prepares the data with musdb, stage 1 trains with Asteroid's
# System on PyTorch Lightning and Hydra, stage 2 scores with museval, stage 3 writes the Hub folder.
# pkg_resources (setuptools before 81): torchmetrics 0.11, the newest that Asteroid allows, imports it.
STAGE_PACKAGES = {
    0: ["asteroid_unet", "soundfile", "musdb"],
    1: ["asteroid_unet", "asteroid", "hydra", "pytorch_lightning", "torchmetrics", "pkg_resources", "librosa"],
    2: ["asteroid_unet", "museval"],
    3: ["asteroid_unet", "huggingface_hub"],
}
INSTALL = ("install the recipe's packages into a venv with pip install '.[train]' from the asteroid-unet folder, "
           "then activate it or pass --python VENV/bin/python")


def problem(stage: int, stop_stage: int) -> str:
    """Why the stages cannot run with this Python, or an empty string."""
    stages = [s for s in STAGE_PACKAGES if stage <= s <= stop_stage]
    if any(s in (0, 2) for s in stages) and not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        return "ffmpeg and ffprobe are not on the PATH (musdb and museval need them): install ffmpeg, " \
               "e.g. sudo apt-get install ffmpeg"
    missing = [name for s in stages for name in STAGE_PACKAGES[s] if importlib.util.find_spec(name) is None]
    if missing:
        return f"{sys.executable} cannot import {missing[0]}: {INSTALL}"
    return ""


if __name__ == "__main__":
    found = problem(int(sys.argv[1]), int(sys.argv[2]))
    if found:
        sys.exit(f"run.sh: {found}")
