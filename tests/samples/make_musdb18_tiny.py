"""Write tests/samples/MUSDB18-tiny: a MUSDB18 wav-layout tree of synthetic tones and noise
(3 train, 1 test track of 1.5 s, 8192 Hz mono, 16-bit), the data folder of the SpeechBrain
recipe's test row in tests/recipes/MUSDB18.csv. No real music: every sample is generated here.

    .venv/bin/python tests/samples/make_musdb18_tiny.py
"""
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).with_name("MUSDB18-tiny")
RATE = 8192
SECONDS = 1.5


def stems(rng: np.random.Generator) -> dict:
    t = np.arange(int(SECONDS * RATE)) / RATE
    f0 = rng.uniform(200, 500)
    return {
        "vocals": 0.3 * np.sin(2 * np.pi * f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)) * t),
        "drums": 0.2 * rng.standard_normal(t.size) * (np.mod(t, 0.5) < 0.05),
        "bass": 0.3 * np.sin(2 * np.pi * rng.uniform(40, 90) * t),
        "other": 0.1 * np.sign(np.sin(2 * np.pi * rng.uniform(500, 900) * t)),
    }


def main() -> None:
    rng = np.random.default_rng(0)
    for subset, n in (("train", 3), ("test", 1)):
        for i in range(n):
            track = ROOT / subset / f"{subset} song {i}"
            track.mkdir(parents=True, exist_ok=True)
            for name, audio in stems(rng).items():
                sf.write(track / f"{name}.wav", audio.astype(np.float32), RATE, subtype="PCM_16")
    print(f"wrote {ROOT}")


if __name__ == "__main__":
    main()
