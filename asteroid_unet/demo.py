"""``make demo``: separate the real MUSDB18 preview shipped in the stempeg wheel and score it."""
import argparse
import sys
import warnings
from pathlib import Path

import museval
import numpy as np
import stempeg

from .separate import separate_file
from .weights import default_weights_path

PREVIEW = Path(stempeg.__file__).parent / "data" / "The Easton Ellises - Falcon 69.stem.mp4"


def true_stems(path: Path):
    """Vocals and accompaniment (drums + bass + other) of a MUSDB ``.stem.mp4``, ``(time, channels)``."""
    stems, rate = stempeg.read_stems(str(path))
    return {"vocals": stems[4], "accompaniment": stems[1] + stems[2] + stems[3]}, int(rate)


def median_sdr(reference: np.ndarray, estimate: np.ndarray, rate: int) -> float:
    """museval (BSSEval v4) SDR, median over 1 s windows."""
    sdr, _, _, _ = museval.evaluate(reference, estimate, win=rate, hop=rate)
    return np.nanmedian(sdr, axis=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--outdir", default="separated")
    args = parser.parse_args(argv)
    if default_weights_path() is None:
        print("NOTE: no trained weights in this build; the demo runs an UNTRAINED model.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written = separate_file(PREVIEW, args.outdir, fmt="wav", force=True, progress=True)
    import soundfile as sf

    refs, rate = true_stems(PREVIEW)
    names = list(refs)
    estimates = [sf.read(written[n], dtype="float32")[0] for n in names]
    n = min(min(len(e) for e in estimates), len(refs[names[0]]))
    references = np.stack([refs[k][:n] for k in names])
    sdr = median_sdr(references, np.stack([e[:n] for e in estimates]), rate)
    floor = median_sdr(references, np.stack([references.sum(0)] * len(names)), rate)  # the mix as each estimate
    print(f"Separated {PREVIEW.name} (SDR: museval, median of 1 s windows; MIX: the mixture as the estimate)")
    for name, value, mix in zip(names, sdr, floor):
        print(f"  {name:14s} {written[name]}   SDR {value:6.2f} dB   (MIX {mix:6.2f} dB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
