"""Stage 0: convert a MUSDB18 root (stems mp4 or wav) once to what training reads.

Writes ``<out>/{train,valid}/<track>/{vocals,accompaniment}.wav`` at the model's rate
(float32 wav), where accompaniment = drums + bass + other, so ``MUSDB18Dataset`` reads
it directly and no mp4 is decoded during training. The validation tracks are musdb's
official split when the root has them, else the last fifth of the training tracks.
A ``prepared.json`` marker makes a second run with the same arguments a no-op.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF


def is_stem_root(root: Path) -> bool:
    """True for MUSDB18 (``*.stem.mp4``), False for the wav layout (MUSDB18-HQ)."""
    return any(root.glob("*/*.stem.mp4"))


def split_tracks(root: Path, is_wav: bool) -> dict:
    """``{"train": [tracks], "valid": [tracks]}`` from musdb's training subset."""
    import musdb

    train = list(musdb.DB(root=str(root), subsets="train", split="train", is_wav=is_wav))
    valid = list(musdb.DB(root=str(root), subsets="train", split="valid", is_wav=is_wav))
    if not valid:
        if not train:
            raise SystemExit(f"error: no training tracks under {root}/train (MUSDB18 layout expected)")
        n_valid = max(1, len(train) // 5) if len(train) > 1 else 0
        train, valid = train[: len(train) - n_valid], train[len(train) - n_valid :] or train
    return {"train": train, "valid": valid}


def write_track(track, folder: Path, sample_rate: int) -> None:
    """Resample and write vocals and accompaniment of a musdb track."""
    sources = {s: track.sources[s].audio for s in ("drums", "bass", "other", "vocals")}
    stems = {"vocals": sources["vocals"], "accompaniment": sources["drums"] + sources["bass"] + sources["other"]}
    folder.mkdir(parents=True, exist_ok=True)
    for name, audio in stems.items():
        x = torch.as_tensor(np.ascontiguousarray(audio.T), dtype=torch.float32)
        y = AF.resample(x, int(track.rate), sample_rate) if track.rate != sample_rate else x
        sf.write(folder / f"{name}.wav", y.T.numpy(), sample_rate, subtype="FLOAT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--musdb_root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sample_rate", type=int, default=8192)
    args = parser.parse_args()
    if not args.musdb_root.is_dir():
        raise SystemExit(f"error: --musdb_root {args.musdb_root} is not a folder")
    marker = args.out / "prepared.json"
    settings = {"musdb_root": str(args.musdb_root.resolve()), "sample_rate": args.sample_rate}
    if marker.exists() and json.loads(marker.read_text()).get("settings") == settings:
        print(f"{args.out} is already prepared; skipping")
        return
    is_wav = not is_stem_root(args.musdb_root)
    counts = {}
    for split, tracks in split_tracks(args.musdb_root, is_wav).items():
        for track in tracks:
            write_track(track, args.out / split / track.name, args.sample_rate)
        counts[split] = [t.name for t in tracks]
        print(f"{split}: {len(tracks)} tracks at {args.sample_rate} Hz")
    marker.write_text(json.dumps({"settings": settings, "tracks": counts}, indent=1))


if __name__ == "__main__":
    main()
