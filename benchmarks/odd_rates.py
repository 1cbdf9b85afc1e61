"""Odd sample rates against the nearest common rate: time and peak memory of the same song's separation.

Twenty rates from 8 to 192 kHz that no recorder uses, each against the nearest of 44.1, 48, 96 and
192 kHz, with each packaged model. Each model runs in a fresh process: it writes ``--seconds`` of
stereo noise at every rate to WAV files, then, pair after pair, separates a short clip at both rates
(so each rate's separator is built and the kernels are warm) and each rate's file into two WAV stems,
the common rate then the odd one, ``--repeat`` times over; each pair keeps the best wall time, the
best CPU time (steadier than wall time on a shared machine) and the least peak RSS, and its rise over
the RSS before (sampled every 2 ms), of each of its two cases. The separator works on a nearby
rate's frame grid where the rate's own is costly (``asteroid_unet.grid``); the table gives that
working rate and how far the model hears the song from its own pitch, in cents.

    python -m benchmarks.odd_rates                       # 5 s songs, both packaged models
    python -m benchmarks.odd_rates --seconds 2 --models paper --repeat 1
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

ODD_RATES = (8001, 9973, 11027, 12343, 14999, 16001, 19997, 22051, 24001, 27997,
             32003, 37813, 44101, 47999, 56789, 64007, 88201, 96001, 143999, 191999)
COMMON_RATES = (44100, 48000, 96000, 192000)
MODELS = ("spleeter-2stems", "paper")


def nearest_common(rate: int) -> int:
    return min(COMMON_RATES, key=lambda common: abs(common - rate))


def watched(job) -> tuple:
    """``(job()'s result, wall s, CPU s, RSS MB before it, at its peak, after it)``; the RSS is
    sampled every 2 ms while the job runs. CPU time is steadier than wall time on a shared machine."""
    import threading
    import time

    import psutil

    process = psutil.Process()
    before = process.memory_info().rss
    peak, done = [before], threading.Event()

    def sample():
        while not done.wait(0.002):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = job()
    finally:
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        done.set()
        sampler.join()
    return result, wall, cpu, before / 2**20, peak[0] / 2**20, process.memory_info().rss / 2**20


def child(args) -> None:
    """Every case of one model in this process; prints a JSON line, one ``{"common", "odd"}`` per odd rate."""
    import tempfile

    import numpy as np
    import soundfile as sf
    import torch

    from asteroid_unet.grid import working_rate
    from asteroid_unet.separate import resolve_model, separate, separate_file

    torch.set_num_threads(args.threads)
    model = resolve_model(args.model)

    def timed(path: Path, out: Path) -> dict:
        _, wall, cpu, before, peak, _ = watched(lambda: separate_file(path, out, model, fmt="wav", force=True))
        return {"wall_s": wall, "cpu_s": cpu, "peak_rise_mb": peak - before, "peak_rss_mb": peak}

    pairs = [(nearest_common(rate), rate) for rate in args.rates]
    best: list = [{} for _ in pairs]  # per pair: {"common": case, "odd": case}
    with tempfile.TemporaryDirectory() as folder:
        songs = {}
        for rate in sorted({rate for pair in pairs for rate in pair}):
            songs[rate] = Path(folder) / f"{rate}.wav"
            noise = np.random.default_rng(0).standard_normal((int(args.seconds * rate), 2)) * 0.1
            sf.write(songs[rate], noise.astype(np.float32), rate, subtype="FLOAT")
        for _ in range(args.repeat):
            for pair, cases in zip(pairs, best):
                for rate in pair:  # a 0.2 s clip: the rate's separator built (4 are kept), the kernels warm
                    separate(torch.randn(2, rate // 5) * 0.1, rate, model)
                for kind, rate in zip(("common", "odd"), pair):
                    case = timed(songs[rate], Path(folder) / "out")
                    cases[kind] = {key: min(value, cases.get(kind, case)[key]) for key, value in case.items()}
    for (_, rate), cases in zip(pairs, best):
        cases["odd"]["working_rate"] = working_rate(rate, int(model.sample_rate), model.hop_length, model.patch_hop)
    print(json.dumps(best))


def measure(model: str, args) -> list:
    """``[{"common": case, "odd": case}]`` of a model, one per odd rate, from its own process (an
    ``error`` in every case if it failed)."""
    cmd = [sys.executable, "-m", "benchmarks.odd_rates", "--child", "--model", model, "--seconds", str(args.seconds),
           "--threads", str(args.threads), "--repeat", str(args.repeat), "--rates", *map(str, args.rates)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        error = {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
        return [{"common": error, "odd": error} for _ in args.rates]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="song length (default: 5)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="packaged models (default: both)")
    parser.add_argument("--rates", type=int, nargs="+", default=list(ODD_RATES), help="odd rates (default: 20)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of every case, the best kept (default: 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", "--json", default="benchmarks/results/odd_rates.json", help="the JSON results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    rows = []
    print(HEADER)
    for model in args.models:
        for rate, cases in zip(args.rates, measure(model, args)):
            row = {"model": model, "rate": rate, "common_rate": nearest_common(rate), **cases}
            if "error" not in row["odd"] and "error" not in row["common"]:
                row["cents"] = 1200 * math.log2(row["odd"]["working_rate"] / rate)
                for key in ("wall_s", "cpu_s", "peak_rise_mb", "peak_rss_mb"):
                    row[f"{key}_ratio"] = row["odd"][key] / row["common"][key]
            rows.append(row)
            print_row(row)
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "threads": args.threads, "seconds": args.seconds, "repeat": args.repeat,
               "load_average": os.getloadavg()}
    print(f"machine: {machine}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "results": rows}, indent=2))
    print(f"\nwrote {out}")


HEADER = (f"{'model':>15s} | {'rate':>6s} | {'works at':>8s} | {'cents':>5s} | {'odd: wall, CPU, peak (rise)':>29s} | "
          f"{'common':>6s} | {'common: wall, CPU, peak (rise)':>29s} | {'wall':>5s} | {'CPU':>5s} | {'peak':>5s}")


def fmt_case(case: dict) -> str:
    if "error" in case:
        return f"failed: {case['error'][:21]}"
    return (f"{case['wall_s']:5.2f} s {case['cpu_s']:5.2f} s {case['peak_rss_mb']:5.0f} MB "
            f"({case['peak_rise_mb']:3.0f})")


def print_row(row: dict) -> None:
    if "cents" not in row:
        print(f"{row['model']:>15s} | {row['rate']:6d} | {fmt_case(row['odd'])} | {fmt_case(row['common'])}")
        return
    print(f"{row['model']:>15s} | {row['rate']:6d} | {row['odd']['working_rate']:8d} | {row['cents']:5.2f} | "
          f"{fmt_case(row['odd']):>29s} | {row['common_rate']:6d} | {fmt_case(row['common']):>29s} | "
          f"{row['wall_s_ratio']:4.2f}x | {row['cpu_s_ratio']:4.2f}x | {row['peak_rss_mb_ratio']:4.2f}x")


if __name__ == "__main__":
    main()
