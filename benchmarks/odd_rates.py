"""Odd sample rates against the nearest common rate: time and peak memory of the same song's separation.

Twenty rates from 8 to 192 kHz that no recorder uses, each against the nearest of 44.1, 48, 96 and
192 kHz, with each packaged model. Each case runs in a fresh subprocess (so its peak RSS is its own):
write ``--seconds`` of stereo noise at the rate to a WAV file, load the model, then separate the file
into two WAV stems (timed: decoding, separation and writing). The separator works on a nearby rate's
frame grid where the rate's own is costly (``asteroid_unet.grid``); the table gives that working rate
and how far the model hears the song from its own pitch.

    python -m benchmarks.odd_rates                       # 5 s songs, both packaged models
    python -m benchmarks.odd_rates --seconds 2 --models paper
"""
import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ODD_RATES = (8001, 9973, 11027, 12343, 14999, 16001, 19997, 22051, 24001, 27997,
             32003, 37813, 44101, 47999, 56789, 64007, 88201, 96001, 143999, 191999)
COMMON_RATES = (44100, 48000, 96000, 192000)
MODELS = ("spleeter-2stems", "paper")


def nearest_common(rate: int) -> int:
    return min(COMMON_RATES, key=lambda common: abs(common - rate))


def child(args) -> None:
    """One timed case in this process; prints a JSON line."""
    import numpy as np
    import soundfile as sf
    import torch

    from asteroid_unet.grid import working_rate
    from asteroid_unet.separate import resolve_model, separate_file

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        song = Path(folder) / "song.wav"
        noise = np.random.default_rng(0).standard_normal((int(args.seconds * args.rate), 2)) * 0.1
        sf.write(song, noise.astype(np.float32), args.rate, subtype="FLOAT")
        del noise
        model = resolve_model(args.model)
        loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        separate_file(song, Path(folder) / "out", model, fmt="wav")
        wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    work = working_rate(args.rate, int(model.sample_rate), model.hop_length, model.patch_hop)
    print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_mb, "loaded_rss_mb": loaded_mb, "working_rate": work}))


def measure(model: str, rate: int, args) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.odd_rates", "--child", "--model", model, "--rate", str(rate),
           "--seconds", str(args.seconds), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="song length (default: 5)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="packaged models (default: both)")
    parser.add_argument("--rates", type=int, nargs="+", default=list(ODD_RATES), help="odd rates (default: 20)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", "--json", default="benchmarks/results/odd_rates.json", help="the JSON results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    rows = []
    print(HEADER)
    for model in args.models:
        common = {rate: measure(model, rate, args) for rate in sorted({nearest_common(r) for r in args.rates})}
        for rate in args.rates:
            near = nearest_common(rate)
            row = {"model": model, "rate": rate, "common_rate": near, "odd": measure(model, rate, args),
                   "common": common[near]}
            if "wall_s" in row["odd"] and "wall_s" in row["common"]:
                row["cents"] = 1200 * math.log2(row["odd"]["working_rate"] / rate)
                row["time_ratio"] = row["odd"]["wall_s"] / row["common"]["wall_s"]
                row["memory_ratio"] = row["odd"]["peak_rss_mb"] / row["common"]["peak_rss_mb"]
            rows.append(row)
            print_row(row)
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "threads": args.threads, "seconds": args.seconds}
    print(f"machine: {machine}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "results": rows}, indent=2))
    print(f"\nwrote {out}")


HEADER = (f"{'model':>15s} | {'rate':>7s} | {'works at':>8s} | {'cents':>5s} | {'odd: wall, peak RSS':>19s} | "
          f"{'common':>6s} | {'common: wall, peak RSS':>22s} | {'time':>5s} | {'memory':>6s}")


def fmt_case(entry: dict) -> str:
    if "error" in entry:
        return f"failed: {entry['error'][:11]}"
    return f"{entry['wall_s']:6.2f} s {entry['peak_rss_mb']:6.0f} MB"


def print_row(row: dict) -> None:
    if "time_ratio" not in row:
        print(f"{row['model']:>15s} | {row['rate']:7d} | {fmt_case(row['odd'])} | {fmt_case(row['common'])}")
        return
    print(f"{row['model']:>15s} | {row['rate']:7d} | {row['odd']['working_rate']:8d} | {row['cents']:5.2f} | "
          f"{fmt_case(row['odd']):>19s} | {row['common_rate']:6d} | {fmt_case(row['common']):>22s} | "
          f"{row['time_ratio']:4.2f}x | {row['memory_ratio']:5.2f}x")


if __name__ == "__main__":
    main()
