"""Stage 0: convert a MUSDB18 root (stems mp4 or wav) once to what training reads.

Writes ``<out>/{train,valid}/<track>/{vocals,accompaniment}.wav`` at the model's rate
(see ``prepared_layout.py``), where accompaniment = drums + bass + other. Each track is
decoded once, in worker processes. The validation tracks are musdb's official split when
the root has them, else the last fifth of the training tracks. Tracks of any length are
kept: training draws its patches across track ends (``train.py``).
"""
import argparse
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf

from asteroid_unet.evaluate import is_stem_root, vocals_and_accompaniment
from prepared_layout import is_prepared, mark_prepared, resample, run_jobs, write_track

STEM_IDS = {"drums": 1, "bass": 2, "other": 3, "vocals": 4}  # stream order of a .stem.mp4


def split_tracks(root: Path, is_wav: bool) -> dict:
    """``{"train": [paths], "valid": [paths]}`` from musdb's training subset."""
    import musdb

    def paths(split):  # a .stem.mp4, or the folder of a wav-layout track (musdb gives its mixture.wav)
        tracks = musdb.DB(root=str(root), subsets="train", split=split, is_wav=is_wav)
        return [Path(t.path).parent if is_wav else Path(t.path) for t in tracks]

    train, valid = paths("train"), paths("valid")
    if not valid:
        if not train:
            raise SystemExit(f"error: no training tracks under {root}/train (MUSDB18 layout expected)")
        n_valid = max(1, len(train) // 5) if len(train) > 1 else 0
        train, valid = train[: len(train) - n_valid], train[len(train) - n_valid :] or train
    return {"train": train, "valid": valid}


def read_sources(path: Path) -> tuple:
    """``({source: (samples, channels)}, rate)`` of a track: one decode of a .stem.mp4, or its wavs."""
    if path.is_dir():
        audio = {s: sf.read(path / f"{s}.wav", dtype="float32", always_2d=True) for s in STEM_IDS}
        return {s: a for s, (a, _) in audio.items()}, audio["vocals"][1]
    import stempeg

    stems, rate = stempeg.read_stems(str(path), dtype=np.float32, always_3d=True)
    return {s: stems[i] for s, i in STEM_IDS.items()}, rate


def track_name(path: Path) -> str:
    return path.name[: -len(".stem.mp4")] if path.name.endswith(".stem.mp4") else path.name


def prepare_track(item: tuple, out: Path, sample_rate: int) -> str:
    split, path = item
    sources, rate = read_sources(path)
    stems = vocals_and_accompaniment(sources)
    write_track(out / split / track_name(path), {k: resample(v, rate, sample_rate) for k, v in stems.items()},
                sample_rate)
    return track_name(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--musdb_root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sample_rate", type=int, default=8192)
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (default: one per core)")
    args = parser.parse_args()
    if not args.musdb_root.is_dir():
        raise SystemExit(f"error: --musdb_root {args.musdb_root} is not a folder")
    settings = {"musdb_root": str(args.musdb_root.resolve()), "sample_rate": args.sample_rate}
    if is_prepared(args.out, "musdb", settings):
        print(f"{args.musdb_root} is already prepared in {args.out}; skipping")
        return
    splits = split_tracks(args.musdb_root, is_wav=not is_stem_root(args.musdb_root))
    items = [(split, path) for split, paths in splits.items() for path in paths]
    names = run_jobs(partial(prepare_track, out=args.out, sample_rate=args.sample_rate), items, args.jobs,
                     f"MUSDB18 {args.musdb_root.name}")
    tracks = {split: [n for (s, _), n in zip(items, names) if s == split] for split in splits}
    for split, done in tracks.items():
        print(f"{split}: {len(done)} MUSDB18 tracks at {args.sample_rate} Hz")
    mark_prepared(args.out, "musdb", settings, tracks)


if __name__ == "__main__":
    main()
