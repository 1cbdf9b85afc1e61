"""Regenerate the golden stems that ``asteroid-unet separate`` writes for both packaged models, on a
stereo song at 44.1 kHz and a mono file at 22.05 kHz, with the Wiener filter off and on, one file
per precision of the U-Net: tests/data/golden_cli.json (``--precision float32``) and
tests/data/golden_cli_bfloat16.json (``--precision bfloat16``). Checked by ``tests/test_golden_cli.py``.

Each stem is stored as the sha256 of its file (the same bytes on the same CPU model and
stack) and as the RMS of every 0.25 s and raw samples at fixed indices (checked to float
rounding anywhere). Rerun it, from the repository root, only when the weights or the separator
change on purpose, and say so in the commit; name the precisions to regenerate (default: both):

    .venv/bin/python tests/create_golden_cli.py bfloat16
"""
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asteroid_unet.cli import main as cli_main
from create_golden import golden_input

DATA = Path(__file__).with_name("data")
GOLDENS = {"float32": DATA / "golden_cli.json", "bfloat16": DATA / "golden_cli_bfloat16.json"}
MODELS = ("spleeter-2stems", "paper")
SETTINGS = {"mask": ["--wiener", "0", "--no-tta"], "wiener1+tta": ["--wiener", "1", "--tta"]}
SAMPLES = [100, 5000, 22050, 40001, 60000, 66000]


def write_inputs(folder: Path) -> dict:
    """``{"stereo": path, "mono": path}``: the golden song (4 s, 44.1 kHz stereo), and its left
    channel's first 3 s resampled to 22.05 kHz, mono."""
    song = golden_input()
    stereo, mono = folder / "stereo.wav", folder / "mono.wav"
    sf.write(stereo, song.numpy().T, 44100, subtype="FLOAT")
    sf.write(mono, song[0, : 3 * 44100 : 2].numpy(), 22050, subtype="FLOAT")
    return {"stereo": stereo, "mono": mono}


def stem_summary(path: Path) -> dict:
    audio, rate = sf.read(path, dtype="float64", always_2d=True)
    frame = rate // 4
    frames = audio[: len(audio) // frame * frame].T.reshape(audio.shape[1], -1, frame)
    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "rate": rate, "shape": list(audio.shape),
            "rms": np.sqrt((frames ** 2).mean(-1)).tolist(), "samples": audio[SAMPLES].T.tolist()}


def compute(precision: str = "float32") -> dict:
    """``{model: {setting: {input: {stem: summary}}}}`` of the command's output files, with the U-Net in ``precision``."""
    torch.set_num_threads(2)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = write_inputs(Path(tmp))
        for model in MODELS:
            for setting, flags in SETTINGS.items():
                outdir = Path(tmp) / model / setting
                code = cli_main(["separate", *map(str, inputs.values()), "-o", str(outdir), "--model", model, "--precision", precision, *flags])
                assert code == 0, f"asteroid-unet separate failed for {model} {setting}"
                out.setdefault(model, {})[setting] = {
                    kind: {stem.stem: stem_summary(stem) for stem in sorted((outdir / kind).glob("*.wav"))}
                    for kind in inputs}
    return out


if __name__ == "__main__":
    for precision in sys.argv[1:] or GOLDENS:
        GOLDENS[precision].write_text(json.dumps(compute(precision), indent=1) + "\n")
        print(f"wrote {GOLDENS[precision]}")
