"""Speed and memory of the whole user path, ours against Open-Unmix, in one run.

Each case runs in a fresh subprocess (so peak RSS is its own): decode a 44.1 kHz stereo
WAV, separate it into vocals and accompaniment, write two WAV files. Timed from the
start of decoding to the last file written; model construction is outside the timing.

Peer: Open-Unmix (``openunmix`` package), UMX-HQ size (hidden 512, 3 BLSTM layers,
n_fft 4096, hop 1024, max_bin 1487), random weights, vocals + residual, one Wiener
iteration (its ``predict.separate`` default). It holds the whole song in memory, so it
runs only up to ``--peer-max-seconds``.

    python benchmarks/speed.py                      # 30 s, 4 min, 60 min on the CPU
    python benchmarks/speed.py --durations 30 240   # quicker
    python benchmarks/speed.py --device cuda --json speed-gpu.json   # on a GPU, from a checkout

On a GPU (``--device cuda``) the cases are a catalogue of ``--catalogue`` MUSDB18-7-size
songs (7 s each, ``--batch-files`` of them per network pass) and the 4-minute song, after
one untimed warm-up separation (CUDA context, cuDNN). Run from a checkout, the package
needs no install: only torch, torchaudio, numpy, scipy, soundfile, tqdm, asteroid and
asteroid-filterbanks (and what they import). Without stempeg the input is a synthetic
song-like signal instead of the tiled MUSDB18 preview; Open-Unmix runs when installed.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, from a checkout without install

RATE = 44100


def preview_clip() -> tuple:
    """``(clip (samples, 2) float32, source)``: the Falcon 69 MUSDB preview's mixture, or without stempeg
    (a bare GPU machine) 7 s of a synthetic song: chords, a vibrato voice and noise bursts, seed 0."""
    try:
        import stempeg

        from asteroid_unet.demo import PREVIEW

        clip, rate = stempeg.read_stems(str(PREVIEW), stem_id=0)
        assert int(rate) == RATE
        return clip.astype(np.float32), "MUSDB18 preview (Falcon 69), tiled"
    except Exception:  # no stempeg, or no ffmpeg for it
        rng = np.random.default_rng(0)
        t = np.arange(7 * RATE) / RATE
        chords = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (110, 220, 277, 330))
        voice = 0.2 * np.sin(2 * np.pi * 440 * (t + 0.002 * np.sin(2 * np.pi * 5 * t)))
        drums = 0.2 * rng.standard_normal(t.size) * (np.mod(t, 0.5) < 0.05)
        mono = chords + voice + drums
        return np.stack([mono, 0.9 * mono], axis=1).astype(np.float32), "synthetic song (no stempeg or ffmpeg)"


def make_input(path: Path, seconds: float) -> None:
    """A real song's texture: the Falcon 69 MUSDB preview (its mixture), tiled to ``seconds``, written in blocks."""
    import soundfile as sf

    clip, _ = preview_clip()
    total = int(seconds * RATE)
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=2, subtype="PCM_16") as f:
        written = 0
        while written < total:
            block = clip[: total - written]
            f.write(block)
            written += len(block)


def run_ours(src: str, outdir: str, device: str, precision: str, chunk_seconds: float, copies: int = 1,
             batch_files: int = 8) -> float:
    import torch

    from asteroid_unet.batch import separate_batched
    from asteroid_unet.separate import separate_file
    from asteroid_unet.weights import load_model

    model = load_model(None).to(device)
    if device == "cuda":  # CUDA context and cuDNN set-up, untimed
        separate_file(src, os.path.join(outdir, "warm-up"), model, fmt="wav", force=True, device=device,
                      precision=precision, chunk_seconds=chunk_seconds)
        torch.cuda.synchronize()
    if copies > 1:  # a catalogue: the same song under several names
        paths = []
        for i in range(copies):
            paths.append(os.path.join(outdir, f"song{i:04d}.wav"))
            os.link(src, paths[-1]) if i else __import__("shutil").copy(src, paths[-1])
    start = time.perf_counter()
    if copies > 1:
        results = list(separate_batched(paths, os.path.join(outdir, "out"), model, batch_files, fmt="wav", force=True,
                                        device=device, chunk_seconds=chunk_seconds, precision=precision))
        failed = [r["error"] for r in results if r["error"]]
        if failed:
            raise RuntimeError(failed[0])
    else:
        separate_file(src, outdir, model, fmt="wav", force=True, device=device, precision=precision,
                      chunk_seconds=chunk_seconds)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run_open_unmix(src: str, outdir: str, device: str) -> float:
    import soundfile as sf
    import torch
    from openunmix.model import OpenUnmix, Separator

    torch.manual_seed(0)
    umx = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, nb_layers=3, max_bin=1487)
    separator = Separator({"vocals": umx}, niter=1, residual=True, n_fft=4096, n_hop=1024, nb_channels=2).eval().to(device)
    start = time.perf_counter()
    audio, rate = sf.read(src, dtype="float32", always_2d=True)
    with torch.inference_mode():
        estimates = separator(torch.from_numpy(audio.T)[None].to(device))  # (1, targets, channels, time)
    estimates = estimates[0].cpu().numpy()
    for name, est in zip(["vocals", "accompaniment"], estimates):
        sf.write(os.path.join(outdir, f"{name}.wav"), est.T, rate, subtype="FLOAT")
    return time.perf_counter() - start


def child(args) -> None:
    """One timed case in this process; prints a JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as outdir:
        if args.child == "ours":
            wall = run_ours(args.input, outdir, args.device, args.precision, args.chunk_seconds, args.copies,
                            args.batch_files)
        else:
            wall = run_open_unmix(args.input, outdir, args.device)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_mb}))


def measure(system: str, src: Path, args, copies: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--child", system, "--input", str(src), "--device", args.device,
           "--threads", str(args.threads), "--precision", args.precision, "--chunk-seconds", str(args.chunk_seconds),
           "--copies", str(copies), "--batch-files", str(args.batch_files)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}  # e.g. openunmix not installed
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=float, nargs="+", default=None,
                        help="input lengths in seconds (default: 30 240 3600 on cpu, 240 on cuda)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--catalogue", type=int, default=None,
                        help="also time this many 7 s songs in one call (default: 0 on cpu, 512 on cuda)")
    parser.add_argument("--batch-files", type=int, default=64, help="songs per network pass in the catalogue case")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--chunk-seconds", type=float, default=60.0)
    parser.add_argument("--peer-max-seconds", type=float, default=240.0, help="longest input given to Open-Unmix")
    parser.add_argument("--out", "--json", default="benchmarks/results/speed.json", help="the JSON results")
    parser.add_argument("--child", choices=["ours", "umx"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--copies", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    cuda = args.device == "cuda"
    durations = args.durations or ([240] if cuda else [30, 240, 3600])
    catalogue = args.catalogue if args.catalogue is not None else (512 if cuda else 0)
    cases = ([(7.0, catalogue)] if catalogue else []) + [(d, 1) for d in durations]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds, copies in cases:
            src = Path(tmp) / f"input_{int(seconds)}s.wav"
            make_input(src, seconds)
            ours = measure("ours", src, args, copies)
            peer = measure("umx", src, args) if copies == 1 and seconds <= args.peer_max_seconds else {"skipped": True}
            row = {"seconds": seconds * copies, "files": copies, "asteroid_unet": ours, "open_unmix": peer}
            seconds = seconds * copies
            for entry in (ours, peer):
                if "wall_s" in entry:
                    entry["realtime_factor"] = seconds / entry["wall_s"]
            if "wall_s" in ours and "wall_s" in peer:
                row["speedup_vs_open_unmix"] = peer["wall_s"] / ours["wall_s"]
            rows.append(row)
            src.unlink()
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "threads": args.threads, "device": args.device, "precision": args.precision,
               "input": preview_clip()[1], "batch_files": args.batch_files}
    if args.device == "cuda":
        import torch

        machine["gpu"] = torch.cuda.get_device_name(0)
    print_table(rows, machine)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "results": rows}, indent=2))
    print(f"\nwrote {out}")


def fmt_case(entry: dict) -> str:
    if entry.get("skipped"):
        return f"{'skipped (whole song in memory)':>32s}"
    if "error" in entry:
        return f"{'failed: ' + entry['error'][:24]:>32s}"
    return f"{entry['wall_s']:8.2f} s {entry['realtime_factor']:8.1f}x {entry['peak_rss_mb']:8.0f} MB"


def print_table(rows, machine) -> None:
    print(f"machine: {machine}")
    print(f"{'input':>8s} | {'asteroid-unet: wall, x realtime, peak RSS':>32s} | {'Open-Unmix (UMX-HQ size)':>32s} | speed-up")
    for row in rows:
        speedup = f"{row['speedup_vs_open_unmix']:7.1f}x" if "speedup_vs_open_unmix" in row else "      -"
        label = f"{row['files']}x{row['seconds'] / row['files']:.0f}s" if row.get("files", 1) > 1 else f"{row['seconds']:.0f}s"
        print(f"{label:>8s} | {fmt_case(row['asteroid_unet'])} | {fmt_case(row['open_unmix'])} | {speedup}")


if __name__ == "__main__":
    main()
