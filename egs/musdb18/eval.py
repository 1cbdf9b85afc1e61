"""Stage 2: BSSEval v4 of a trained model on a MUSDB-layout root, against the MIX and IRM rows.

Works on any MUSDB18 root (stems mp4 or wav), for example ``/data/musdb18``.
The reference is always the sum of the stems: vocals, and drums + bass + other as the
accompaniment. Writes ``<out_dir>/tracks/<track>.json`` (per track, median over 1 s
windows), ``summary.json`` and ``summary.md`` (median over tracks), and prints the table.
"""
import argparse
import sys
from pathlib import Path

import torch

from asteroid_unet import UNet
from asteroid_unet.evaluate import (MUSDB_STEMS, score_track, summarize, vocals_and_accompaniment, write_json,
                                    write_markdown)
from asteroid_unet.parallel import ordered_map

_worker = {}  # per process: the model, the tracks by name and the options


def open_tracks(root: Path, subset: str, max_tracks=None) -> list:
    """The musdb tracks under ``root/subset`` (stems or wav layout), in musdb's order."""
    import musdb

    is_wav = not any((root / subset).glob("*.stem.mp4"))
    return list(musdb.DB(root=str(root), subsets=subset, is_wav=is_wav))[:max_tracks]


def start_worker(model_path: str, root: Path, subset: str, max_tracks, device: str, name: str) -> None:
    """Load the model and open the tracks once per process."""
    _worker.update(model=UNet.from_pretrained(model_path).eval(), device=device, name=name,
                   tracks={t.name: t for t in open_tracks(root, subset, max_tracks)})


def score_named_track(track_name: str) -> dict:
    """``{row: scores}`` of one track: the model (which also records its ``time_s``), MIX and IRM."""
    model, track = _worker["model"], _worker["tracks"][track_name]
    references = vocals_and_accompaniment({s: track.sources[s].audio for s in MUSDB_STEMS})
    return score_track(model, references, track.rate, _worker["name"], device=_worker["device"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="best_model.pth, an exported folder's pytorch_model.bin or a hub id")
    parser.add_argument("--root", type=Path, required=True, help="MUSDB18 root (stems or wav layout)")
    parser.add_argument("--subset", default="test", choices=["train", "test"])
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--name", default="UNet", help="row name of the model in the table")
    parser.add_argument("--max_tracks", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--jobs", type=int, default=1, help="tracks scored at once, one worker process each")
    args = parser.parse_args()

    if not (args.root / args.subset).is_dir():
        sys.exit(f"error: {args.root / args.subset} does not exist (MUSDB18 layout expected)")
    names = [t.name for t in open_tracks(args.root, args.subset, args.max_tracks)]
    if not names:
        sys.exit(f"error: no tracks under {args.root / args.subset}")
    per_track = {}
    worker = (args.model, args.root, args.subset, args.max_tracks, args.device, args.name)
    for name, rows in zip(names, ordered_map(score_named_track, names, args.jobs, start_worker, worker)):
        write_json(rows, args.out_dir / "tracks" / f"{name}.json")
        per_track[name] = rows
        print(f"{name}: " + ", ".join(f"{r} vocals SDR {s['vocals']['SDR']:.2f}" for r, s in rows.items()), flush=True)
    summary = summarize(per_track)
    write_json(summary, args.out_dir / "summary.json")
    title = f"{args.root} ({args.subset}, {len(names)} tracks): BSSEval v4, median over 1 s windows then tracks, dB"
    print(write_markdown(summary, args.out_dir / "summary.md", title).read_text())


if __name__ == "__main__":
    main()
