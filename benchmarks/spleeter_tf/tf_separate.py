"""Separate one input with Spleeter 2stems (TensorFlow), in this process; run with the TensorFlow venv's Python.

    tf_separate.py [--mwf] INPUT OUTPUT_DIR

``INPUT``: a ``.npy`` array ``(samples, 2)`` float32 at 44.1 kHz (written as ``OUTPUT_DIR/stems.npz``
with ``vocals`` and ``accompaniment``, same shape), or an audio file that soundfile reads at 44.1 kHz
(written as ``OUTPUT_DIR/vocals.wav`` and ``accompaniment.wav``, float). Prints one JSON line:
``wall_s``, the seconds from the start of reading the input to the last output written (Spleeter
builds its graph and restores its checkpoint lazily, inside this time), and ``peak_rss_mb``.

``--mwf``: Spleeter's own multichannel Wiener filter (``Separator(MWF=True)``, norbert's defaults).

Spleeter's prediction generator is one-shot: use one process per input.
"""
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

RATE = 44100


def main(src: str, outdir: str, mwf: bool = False) -> None:
    if not Path(src).is_file():
        sys.exit(f"error: no input file {src}")
    from spleeter.separator import Separator

    separator = Separator(MWF=mwf, multiprocess=False)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if src.endswith(".npy"):
        waveform = np.load(src).astype(np.float32, copy=False)
    else:
        import soundfile as sf

        waveform, rate = sf.read(src, dtype="float32", always_2d=True)
        if rate != RATE:
            sys.exit(f"error: {src} is at {rate} Hz; Spleeter 2stems needs {RATE} Hz")
    if waveform.ndim != 2 or waveform.shape[1] != 2:
        sys.exit(f"error: expected (samples, 2) stereo, got shape {waveform.shape}")
    stems = separator.separate(waveform)
    if src.endswith(".npy"):
        np.savez(out / "stems.npz", vocals=stems["vocals"], accompaniment=stems["accompaniment"])
    else:
        import soundfile as sf

        for name in ("vocals", "accompaniment"):
            sf.write(out / f"{name}.wav", stems[name], RATE, subtype="FLOAT")
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_mb}), flush=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--mwf"]
    if len(args) != 2:
        sys.exit("usage: " + __doc__.strip().splitlines()[2].strip())
    main(args[0], args[1], mwf="--mwf" in sys.argv[1:])
