"""A compact copy of a prepared folder: every WAV as mono Ogg Opus, to move a training set to another machine.

``train_minimal.py`` and ``train.py`` read the copy as they read the original (any format,
resampled to the model rate on load). Opus is lossy: at the default 24 kbit/s and 16 kHz
the copy keeps the model's 4 kHz band at about a tenth of the size of 8192 Hz float WAV.

    python local/compress_prepared.py data/prepared-musdb18-7-8192 data/compact --bitrate 24k
"""
import argparse
import shutil
import subprocess
from functools import partial
from pathlib import Path

from prepared_layout import run_jobs


def encode(item: tuple, bitrate: str) -> str:
    source, target = item
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), "-ac", "1", "-ar", "16000",
                    "-c:a", "libopus", "-b:a", bitrate, str(target)], check=True)
    return str(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--bitrate", default="24k")
    parser.add_argument("--jobs", type=int, default=0)
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("error: ffmpeg is not on PATH")
    items = [(wav, args.dst / wav.relative_to(args.src).with_suffix(".opus")) for wav in sorted(args.src.rglob("*.wav"))]
    if not items:
        raise SystemExit(f"error: no WAV files under {args.src}")
    run_jobs(partial(encode, bitrate=args.bitrate), items, args.jobs, "Opus")
    size = sum(t.stat().st_size for _, t in items) / 1e6
    print(f"{len(items)} files, {size:.1f} MB in {args.dst}")


if __name__ == "__main__":
    main()
