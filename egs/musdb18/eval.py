"""Stage 2: BSSEval v4 of a trained model on a MUSDB-layout root, against the MIX and IRM rows.

Works on any MUSDB18 root (stems mp4 or wav), for example ``../shared/data/musdb-preview``.
The reference is always the sum of the stems: vocals, and drums + bass + other as the
accompaniment. Writes ``<out_dir>/tracks/<track>.json`` (per track, median over 1 s
windows), ``summary.json`` and ``summary.md`` (median over tracks), and prints the table.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

from asteroid_unet import UNet
from asteroid_unet.evaluate import bss_eval, reference_rows, summarize, write_json, write_markdown
from asteroid_unet.separate import separate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="best_model.pth, an exported folder's pytorch_model.bin or a hub id")
    parser.add_argument("--root", type=Path, required=True, help="MUSDB18 root (stems or wav layout)")
    parser.add_argument("--subset", default="test", choices=["train", "test"])
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--name", default="UNet", help="row name of the model in the table")
    parser.add_argument("--max_tracks", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    import musdb

    if not (args.root / args.subset).is_dir():
        sys.exit(f"error: {args.root / args.subset} does not exist (MUSDB18 layout expected)")
    is_wav = not any((args.root / args.subset).glob("*.stem.mp4"))
    tracks = list(musdb.DB(root=str(args.root), subsets=args.subset, is_wav=is_wav))[: args.max_tracks]
    if not tracks:
        sys.exit(f"error: no tracks under {args.root / args.subset}")
    model = UNet.from_pretrained(args.model).eval()
    per_track = {}
    for track in tracks:
        stems = {s: track.sources[s].audio for s in ("drums", "bass", "other", "vocals")}
        references = {"vocals": stems["vocals"], "accompaniment": stems["drums"] + stems["bass"] + stems["other"]}
        rows = reference_rows(references, track.rate, int(model.sample_rate), model.n_fft, model.hop_length)
        start = time.perf_counter()
        mixture = references["vocals"] + references["accompaniment"]
        estimates = separate(mixture.T, track.rate, model, device=args.device)
        estimates = {t: estimates[t].cpu().numpy().T for t in references}
        rows[args.name] = {**bss_eval(references, estimates, track.rate), "time_s": time.perf_counter() - start}
        write_json(rows, args.out_dir / "tracks" / f"{track.name}.json")
        per_track[track.name] = rows
        print(f"{track.name}: " + ", ".join(f"{r} vocals SDR {s['vocals']['SDR']:.2f}" for r, s in rows.items()), flush=True)
    summary = summarize(per_track)
    write_json(summary, args.out_dir / "summary.json")
    title = f"{args.root} ({args.subset}, {len(tracks)} tracks): BSSEval v4, median over 1 s windows then tracks, dB"
    print(write_markdown(summary, args.out_dir / "summary.md", title).read_text())


if __name__ == "__main__":
    main()
