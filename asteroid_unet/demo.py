"""``make demo``: separate the real MUSDB18 preview shipped in the stempeg wheel and score it."""
import argparse
import sys
import warnings
from pathlib import Path

import soundfile as sf
import stempeg

from .errors import CheckpointError
from .evaluate import MUSDB_STEMS, bss_eval, mix_estimates, vocals_and_accompaniment
from .separate import separate_file

PREVIEW = Path(stempeg.__file__).parent / "data" / "The Easton Ellises - Falcon 69.stem.mp4"


def true_stems(path: Path):
    """Vocals and accompaniment (drums + bass + other) of a MUSDB ``.stem.mp4``, ``(time, channels)``."""
    stems, rate = stempeg.read_stems(str(path))  # streams: mixture, drums, bass, other, vocals
    return vocals_and_accompaniment(dict(zip(MUSDB_STEMS, stems[1:]))), int(rate)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--outdir", default="separated")
    args = parser.parse_args(argv)
    try:  # the default weights are built on first use: offline, that is one line
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            written = separate_file(PREVIEW, args.outdir, fmt="wav", force=True, progress=True)
    except CheckpointError as err:
        print(f"asteroid-unet: error: {err}", file=sys.stderr)
        return 1
    refs, rate = true_stems(PREVIEW)
    stems = {name: sf.read(written[name], dtype="float32")[0] for name in refs}
    n = min(min(len(s) for s in stems.values()), len(refs["vocals"]))
    refs = {name: ref[:n] for name, ref in refs.items()}
    scores = bss_eval(refs, {name: s[:n] for name, s in stems.items()}, rate)
    floor = bss_eval(refs, mix_estimates(sum(refs.values()), list(refs)), rate)
    print(f"Separated {PREVIEW.name} (SDR: museval, median of 1 s windows; MIX: the mixture as the estimate)")
    for name in refs:
        print(f"  {name:14s} {written[name]}   SDR {scores[name]['SDR']:6.2f} dB   (MIX {floor[name]['SDR']:6.2f} dB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
