"""Stage 0, extra data: a folder of ``<clip>/{vocals,accompaniment}.<ext>`` pairs (MIR-1K's layout).

Clips named ``<song>_<NN>`` (MIR-1K: ``<singer>_<song>_<clip>``) are consecutive parts of
one song: they are joined, in clip order, into one track ``<prefix>-<song>``. A fixed
slice of the songs (every ``--valid_every``-th in sorted order) goes to validation, the
rest to training. Writes the prepared layout of ``prepared_layout.py`` at the model rate.
"""
import argparse
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf

from asteroid_unet.data import clip_songs, source_file
from prepared_layout import (SOURCES, add_root_arguments, is_prepared, mark_prepared, resample, root_settings, run_jobs,
                             write_track)

def read_mono(path: Path) -> tuple:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return audio.mean(1, keepdims=True), rate


def prepare_song(item: tuple, out: Path, sample_rate: int) -> str:
    split, name, clips = item
    stems = {}
    for source in SOURCES:
        parts = [read_mono(source_file(clip, source)) for clip in clips]
        stems[source] = np.concatenate([resample(audio, rate, sample_rate) for audio, rate in parts])
    length = min(len(a) for a in stems.values())
    write_track(out / split / name, {k: v[:length] for k, v in stems.items()}, sample_rate)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_root_arguments(parser, "folder of <clip>/{vocals,accompaniment}.<ext>")
    parser.add_argument("--valid_every", type=int, default=10, help="every N-th song validates (0: none)")
    args = parser.parse_args()
    settings = root_settings(args, valid_every=args.valid_every)
    prefix = settings["prefix"]
    if is_prepared(args.out, prefix, settings):
        print(f"{args.root} is already prepared in {args.out}; skipping")
        return
    grouped = clip_songs(args.root)
    if not grouped:
        raise SystemExit(f"error: no <clip>/{{vocals,accompaniment}} folders under {args.root}")
    items = [("valid" if args.valid_every and i % args.valid_every == 0 else "train", f"{prefix}-{song}", clips)
             for i, (song, clips) in enumerate(grouped.items())]
    run_jobs(partial(prepare_song, out=args.out, sample_rate=args.sample_rate), items, args.jobs, prefix)
    tracks = {split: [name for s, name, _ in items if s == split] for split in ("train", "valid")}
    n_clips = sum(len(clips) for _, _, clips in items)
    print(f"{prefix}: {n_clips} clips joined into {len(items)} songs: "
          f"{len(tracks['train'])} train, {len(tracks['valid'])} valid")
    mark_prepared(args.out, prefix, settings, tracks)


if __name__ == "__main__":
    main()
