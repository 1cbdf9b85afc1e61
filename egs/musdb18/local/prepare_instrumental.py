"""Stage 0, extra data: a folder of instrumental music files becomes extra accompaniment.

Every audio file under ``--root`` (recursively; ``--exclude`` names files to skip, such as
tracks with singing) becomes a training track ``<prefix>-<file stem>`` whose vocals are
silent; with cross-track remixing, training pairs it with the vocals of other tracks.
Writes the prepared layout of ``prepared_layout.py`` at the model rate, mono.
"""
import argparse
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf

from asteroid_unet.data import AUDIO_EXTENSIONS
from prepared_layout import (add_root_arguments, is_prepared, mark_prepared, resample, root_settings, run_jobs,
                             write_track)

def prepare_file(item: tuple, out: Path, sample_rate: int) -> str:
    name, path = item
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    accompaniment = resample(audio.mean(1, keepdims=True), rate, sample_rate)
    write_track(out / "train" / name, {"vocals": np.zeros_like(accompaniment), "accompaniment": accompaniment},
                sample_rate)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_root_arguments(parser, "folder of instrumental audio files")
    parser.add_argument("--exclude", default="", help="comma-separated file names to skip (e.g. songs with singing)")
    args = parser.parse_args()
    excluded = {name for name in args.exclude.split(",") if name}
    settings = root_settings(args, exclude=sorted(excluded))
    prefix = settings["prefix"]
    if is_prepared(args.out, prefix, settings):
        print(f"{args.root} is already prepared in {args.out}; skipping")
        return
    files = sorted(p for p in args.root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.name not in excluded)
    if not files:
        raise SystemExit(f"error: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {args.root}")
    items = [(f"{prefix}-{p.relative_to(args.root).with_suffix('').as_posix().replace('/', '-')}", p) for p in files]
    names = run_jobs(partial(prepare_file, out=args.out, sample_rate=args.sample_rate), items, args.jobs, prefix)
    print(f"{prefix}: {len(names)} instrumental tracks as extra accompaniment ({len(excluded)} excluded)")
    mark_prepared(args.out, prefix, settings, {"train": names})


if __name__ == "__main__":
    main()
