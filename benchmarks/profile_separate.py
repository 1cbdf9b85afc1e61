"""Where the time of one separation goes: the user path of ``speed.py`` under cProfile, by stage.

Separates a 44.1 kHz stereo WAV (made from the Falcon 69 preview, as in ``speed.py``) with
``separate_file`` and the model's own settings, and reports the cumulative time of each stage:
reading, the separator's inference copy of the model, resampling to the model's rate, the model's
magnitude STFT, the U-Net on its patches, their cross-fade into masks, carrying the masks onto the
full-band grid, the full-band STFT, the Wiener filter, the inverse STFT, and writing; what is left
(the file driver, mask arithmetic, copies) is "everything else". Prints a table and writes JSON.

The U-Net's speed: its floating-point operations (convolutions, counted by PyTorch's
``FlopCounterMode`` on one patch, times the patches it computed) over its time, in GFLOP/s,
beside the machine's peak for the precision used: the GFLOP/s of a large matrix product in that
precision on the same threads (what the CPU's matrix or vector units reach in practice).

    python -m benchmarks.profile_separate --model paper --seconds 240
    python -m benchmarks.profile_separate                     # the default model, --precision auto
    python -m benchmarks.profile_separate --precision float32
"""
import argparse
import cProfile
import json
import platform
import pstats
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from asteroid_unet.precision import DTYPES, PRECISIONS, resolve_precision
from asteroid_unet.separator import model_settings
from benchmarks.speed import make_input

# (label, function name, a path fragment of its file, the callers counted or None for all)
STAGES = [
    ("read the input", "read", "asteroid_unet/audio.py", None),
    ("inference copy of the model (once)", "for_inference", "asteroid_unet/model.py", None),
    ("resample to the model's rate", "fft_resample", "asteroid_unet/fullband.py", None),
    ("model STFT (magnitude)", "magnitude", "asteroid_unet/model.py", None),
    ("U-Net on patches", "_patch_masks", "asteroid_unet/separator.py", None),
    ("patches cross-faded into masks", "masks_from_patches", "asteroid_unet/model.py", None),
    ("masks onto the full-band grid", "interpolate_mask", "asteroid_unet/fullband.py", None),
    ("full-band STFT", "stft", "torch/functional.py", ("_stft",)),  # the separator's, not the model's
    ("Wiener filter", "wiener", "asteroid_unet/wiener.py", None),
    ("full-band inverse STFT", "istft", "~", None),  # a builtin
    ("write the stems", "write", "asteroid_unet/audio.py", None),
]


def cumulative(stats: dict, name: str, fragment: str, callers) -> float:
    """Seconds spent in (and under) function ``name`` of a file ending in ``fragment``, from ``callers``."""
    total = 0.0
    for (file, _, func), (_, _, _, ct, calls) in stats.items():
        if func in (name, f"<built-in method torch.{name}>") and file.replace("\\", "/").endswith(fragment):
            total += ct if callers is None else sum(c[3] for (_, _, f), c in calls.items() if f in callers)
    return total


def unet_flops_per_patch(model) -> float:
    """Floating-point operations of the model's U-Net (convolutions) on one patch."""
    patch = torch.zeros(1, model.audio_channels, model.n_bins, model.patch_frames)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.for_inference().masker(patch)
    return float(counter.get_total_flops())


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a ``size`` x ``size`` matrix product in ``dtype``: the machine's practical peak."""
    a, b = torch.rand(size, size).to(dtype), torch.rand(size, size).to(dtype)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def profile(src: Path, outdir: str, model_spec, precision: str) -> dict:
    from asteroid_unet.model import load_model
    from asteroid_unet.separate import separate_file
    from asteroid_unet.separator import Separator

    model = load_model(model_spec)
    patches = []
    network = Separator._patch_masks

    def counted(separator, batch):  # the patches the U-Net computes (twice each with tta)
        patches.append(batch.shape[0] * (2 if separator.tta else 1))
        return network(separator, batch)

    profiler = cProfile.Profile()
    Separator._patch_masks = counted
    try:
        start = time.perf_counter()
        profiler.enable()
        separate_file(src, outdir, model, force=True, precision=precision)
        profiler.disable()
        total = time.perf_counter() - start
    finally:
        Separator._patch_masks = network
    stats = pstats.Stats(profiler).stats
    stages = {label: cumulative(stats, *where) for label, *where in STAGES}
    stages["everything else"] = total - sum(stages.values())
    resolved = resolve_precision(precision, torch.device("cpu"), model_settings(model)["precision"])
    unet_s = stages["U-Net on patches"]
    return {"total_s": total, "stages_s": stages, "precision": resolved, "patches": sum(patches),
            "unet_gflops": unet_flops_per_patch(model) * sum(patches) / unet_s / 1e9 if unet_s else 0.0,
            "peak_gflops": matmul_gflops(DTYPES[resolved])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a model name or file (default: the default model)")
    parser.add_argument("--seconds", type=float, default=240.0, help="input length")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="the U-Net's (default: auto)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "input.wav"
        make_input(src, args.seconds)
        result = profile(src, tmp, args.model, args.precision)
    result.update(model=args.model or "default", seconds=args.seconds, threads=torch.get_num_threads(),
                  machine=platform.processor() or platform.machine(), torch=torch.__version__)
    print(f"{args.seconds:.0f} s input, model {result['model']}, {result['threads']} threads: "
          f"{result['total_s']:.2f} s ({args.seconds / result['total_s']:.0f}x real time)")
    for label, seconds in result["stages_s"].items():
        print(f"  {label:32s} {seconds:6.2f} s  {100 * seconds / result['total_s']:4.0f} %")
    print(f"U-Net in {result['precision']}: {result['patches']} patches at {result['unet_gflops']:.0f} GFLOP/s; "
          f"the machine's peak in {result['precision']} (a 2048 x 2048 matrix product): {result['peak_gflops']:.0f} GFLOP/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
