"""The prepared layout that stage 0 writes and ``train.py`` reads, shared by the ``local/`` scripts.

``<out>/{train,valid}/<track>/{vocals,accompaniment}.wav``: float32 WAV at the model's rate,
one folder per track, where the mix is the sum of the two. Each preparation script leaves a
marker ``<out>/.prepared/<name>.json`` holding its settings, so a second run with the same
settings is a no-op, and works through its items in worker processes with a progress bar.
"""
import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from tqdm import tqdm

SOURCES = ("vocals", "accompaniment")


def resample(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """``(samples, channels)`` float32 audio at ``target_rate``."""
    if rate == target_rate:
        return np.ascontiguousarray(audio, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(audio.T, dtype=np.float32))
    return AF.resample(x, int(rate), int(target_rate)).T.numpy()


def write_track(folder: Path, stems: dict, rate: int) -> None:
    """Write ``{"vocals": (samples, ch), "accompaniment": (samples, ch)}`` at ``rate`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        sf.write(folder / f"{name}.wav", stems[name], rate, subtype="FLOAT")


def add_root_arguments(parser: argparse.ArgumentParser, root_help: str) -> None:
    """The options of a script that prepares one folder of extra tracks into ``--out``."""
    parser.add_argument("--root", type=Path, required=True, help=root_help)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sample_rate", type=int, default=8192)
    parser.add_argument("--prefix", default=None, help="track name prefix (default: the root's name)")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (default: one per core)")


def root_settings(args: argparse.Namespace, **extra) -> dict:
    """The settings that mark ``args.root`` as prepared (``extra`` added); exits if it is not a folder."""
    if not args.root.is_dir():
        raise SystemExit(f"error: --root {args.root} is not a folder")
    prefix = args.prefix or args.root.resolve().name
    return {"root": str(args.root.resolve()), "sample_rate": args.sample_rate, "prefix": prefix, **extra}


def is_prepared(out: Path, name: str, settings: dict) -> bool:
    marker = out / ".prepared" / f"{name}.json"
    return marker.exists() and json.loads(marker.read_text()).get("settings") == settings


def mark_prepared(out: Path, name: str, settings: dict, tracks: dict) -> None:
    marker = out / ".prepared" / f"{name}.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"settings": settings, "tracks": tracks}, indent=1) + "\n")


def run_jobs(function: Callable, items: Iterable, jobs: int, desc: str) -> list:
    """``[function(item) for item in items]`` in ``jobs`` worker processes, with a progress bar."""
    items = list(items)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(items) or 1))
    if jobs == 1:
        return [function(item) for item in tqdm(items, desc=desc, unit="track")]
    with ProcessPoolExecutor(jobs) as pool:
        return list(tqdm(pool.map(function, items), total=len(items), desc=desc, unit="track"))
