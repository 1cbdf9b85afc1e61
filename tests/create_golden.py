"""Regenerate tests/data/golden_paper.json: stored stems of the packaged paper weights
(``asteroid_unet/weights/unet_default.pth``, the U-Net in float32) on a fixed input, checked by
``tests/test_separation_quality.py::test_golden_output_of_the_paper_weights``.

Run it, from the repository root, only when the weights or the separator change on purpose
(new training, a deliberate change of the algorithm), and say so in the commit:

    .venv/bin/python tests/create_golden.py
"""
import json
from pathlib import Path

import numpy as np
import torch

from asteroid_unet import UNet
from asteroid_unet.separate import separate
from helpers import voice_and_backing

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "asteroid_unet" / "weights" / "unet_default.pth"
GOLDEN = Path(__file__).with_name("data") / "golden_paper.json"
RATE = 44100
FRAME = RATE // 4  # RMS per 0.25 s
SAMPLES = [1000, 20000, 44100, 70001, 100000, 123456, 150000, 176000]


def golden_input() -> torch.Tensor:
    """4 s of stereo at 44.1 kHz: the voice panned left of a centred backing."""
    voice, backing = voice_and_backing(seconds=4.0, seed=0)
    return torch.from_numpy(np.stack([voice + backing, 0.6 * voice + backing]).astype(np.float32))


def summary(stems: dict) -> dict:
    """Per stem: RMS of every 0.25 s frame per channel, and raw samples at fixed indices."""
    out = {}
    for name, stem in stems.items():
        x = stem.double()
        frames = x[:, : x.shape[-1] // FRAME * FRAME].reshape(x.shape[0], -1, FRAME)
        out[name] = {"rms": frames.pow(2).mean(-1).sqrt().tolist(), "samples": x[:, SAMPLES].tolist()}
    return out


def compute() -> dict:
    torch.set_num_threads(2)
    model = UNet.from_pretrained(str(WEIGHTS))
    return {"weights": WEIGHTS.name, "rate": RATE, "frame": FRAME, "sample_indices": SAMPLES,
            "stems": summary(separate(golden_input(), RATE, model, precision="float32"))}


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(compute(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
