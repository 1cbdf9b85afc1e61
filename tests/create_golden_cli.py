"""Regenerate tests/data/golden_cli.json: the stems that ``asteroid-unet separate`` writes for both
packaged models, on a stereo song at 44.1 kHz and a mono file at 22.05 kHz, with the Wiener filter
off and on. Checked by ``tests/test_golden_cli.py``.

Each stem is stored as the sha256 of its file (the same bytes on the same CPU model and
stack) and as the RMS of every 0.25 s and raw samples at fixed indices (checked to float
rounding anywhere). Rerun it, from the repository root, only when the weights or the separator
change on purpose, and say so in the commit:

    .venv/bin/python tests/create_golden_cli.py
"""
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asteroid_unet.cli import main as cli_main
from create_golden import golden_input

GOLDEN = Path(__file__).with_name("data") / "golden_cli.json"
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


def compute() -> dict:
    """``{model: {setting: {input: {stem: summary}}}}`` of the command's output files."""
    torch.set_num_threads(2)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = write_inputs(Path(tmp))
        for model in MODELS:
            for setting, flags in SETTINGS.items():
                outdir = Path(tmp) / model / setting
                code = cli_main(["separate", *map(str, inputs.values()), "-o", str(outdir), "--model", model, *flags])
                assert code == 0, f"asteroid-unet separate failed for {model} {setting}"
                out.setdefault(model, {})[setting] = {
                    kind: {stem.stem: stem_summary(stem) for stem in sorted((outdir / kind).glob("*.wav"))}
                    for kind in inputs}
    return out


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(compute(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
