"""Data preparation for the MUSDB18 recipes: SpeechBrain CSV manifests, one row
per track.

Reads a MUSDB18 root in either layout:

- wav (MUSDB18-HQ, ``musdbconvert`` output, or the synthetic set of
  ``asteroid_unet.synth``):
  ``<root>/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav``;
- stems (the MUSDB18 release): ``<root>/{train,test}/<track>.stem.mp4``, decoded
  once with ``musdb`` into ``<save_folder>/wav`` (needs ffmpeg).

Writes ``train.csv``, ``valid.csv`` and ``test.csv`` in ``save_folder`` with the
columns ``ID, duration, sample_rate, frames, channels, vocals, drums, bass,
other`` (absolute paths). The validation tracks are musdb's official ones when
the train set has them; otherwise (e.g. a synthetic set) the last
``valid_fraction`` of the sorted train tracks.

Example
-------
>>> prepare_musdb18("/data/musdb18hq", "results/save")  # doctest: +SKIP
"""

import csv
import json
import math
import os
from pathlib import Path

import soundfile as sf
import yaml
from asteroid_unet.data import AUDIO_EXTENSIONS, clip_songs, source_file
from asteroid_unet.evaluate import is_stem_root

STEMS = ("vocals", "drums", "bass", "other")
SUBSETS = ("train", "test")
MANIFESTS = ("train.csv", "valid.csv", "test.csv")
COLUMNS = ("ID", "duration", "sample_rate", "frames", "channels") + STEMS


def prepare_musdb18(
    data_folder,
    save_folder,
    is_wav=None,
    valid_fraction=0.14,
    skip_prep=False,
    extra_roots=(),
    instrumental_exclude=(),
):
    """Write the train/valid/test manifests of a MUSDB18 root into
    ``save_folder``.

    Args:
        data_folder (str): the MUSDB18 root (holds ``train/`` and ``test/``).
        save_folder (str): where the manifests (and decoded stems) go.
        is_wav (bool): wav layout if True, ``.stem.mp4`` files if False; None
            detects it (``.stem.mp4`` files in a subset folder).
            Default None.
        valid_fraction (float): share of train tracks held out when musdb's
            official validation tracks are absent. Default 0.14 (14 of 100, as
            musdb).
        skip_prep (bool): do nothing. Default False.
        extra_roots (list): more training data, as the Asteroid recipe's
            ``--extra_roots``: ``"pairs:DIR"`` (``<clip>/{vocals,
            accompaniment}.<ext>``, MIR-1K's layout; every 10th song, by the
            ``<song>_<NN>`` clip names, validates) or ``"instrumental:DIR"``
            (music files without singing: accompaniment only). Their rows
            leave the stems they lack empty and put the accompaniment in
            ``other``. Default none.
        instrumental_exclude (list): file names skipped in instrumental roots
            (songs with singing). Default none.
    """
    if skip_prep:
        return
    save_folder = Path(save_folder)
    root = Path(data_folder)
    if is_wav is None:
        is_wav = not is_stem_root(root)
    options = dict(
        data_folder=str(root.resolve()),
        is_wav=bool(is_wav),
        valid_fraction=valid_fraction,
        extra_roots=[str(r) for r in extra_roots],
        instrumental_exclude=sorted(instrumental_exclude),
    )
    options_file = save_folder / "prepare_options.json"
    if (
        all((save_folder / m).is_file() for m in MANIFESTS)
        and _read_json(options_file) == options
    ):
        return
    missing = [s for s in SUBSETS if not (root / s).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{root} is not a MUSDB18 root: no {', '.join(missing)} folder"
        )
    save_folder.mkdir(parents=True, exist_ok=True)
    if not is_wav:
        root = decode_stems(root, save_folder / "wav")
    tracks = {
        subset: [_track_row(d) for d in _track_dirs(root / subset)]
        for subset in SUBSETS
    }
    for subset, rows in tracks.items():
        if not rows:
            raise FileNotFoundError(f"No tracks in {root / subset}")
    train, valid = split_validation(tracks["train"], valid_fraction)
    for entry in extra_roots:
        extra_train, extra_valid = extra_rows(entry, instrumental_exclude)
        train, valid = train + extra_train, valid + extra_valid
    for name, rows in zip(MANIFESTS, (train, valid, tracks["test"])):
        _write_csv(save_folder / name, rows)
    options_file.write_text(json.dumps(options))


def extra_rows(entry, instrumental_exclude=()):
    """``(train, valid)`` manifest rows of one ``"pairs:DIR"`` or
    ``"instrumental:DIR"`` entry (see :func:`prepare_musdb18`)."""
    kind, _, folder = str(entry).partition(":")
    root = Path(folder)
    if kind not in ("pairs", "instrumental") or not root.is_dir():
        raise ValueError(
            f"extra root {entry!r}: expected pairs:DIR or instrumental:DIR "
            "with an existing DIR"
        )
    prefix = root.resolve().name
    if kind == "instrumental":
        excluded = set(instrumental_exclude)
        files = sorted(
            p
            for p in root.rglob("*")
            if p.suffix.lower() in AUDIO_EXTENSIONS and p.name not in excluded
        )
        rows = [_extra_row(f"{prefix}-{p.stem}", None, p) for p in files]
        return rows, []
    songs = clip_songs(root)
    train, valid = [], []
    for index, clips in enumerate(songs.values()):
        rows = [
            _extra_row(
                f"{prefix}-{clip.name}",
                source_file(clip, "vocals"),
                source_file(clip, "accompaniment"),
            )
            for clip in clips
        ]
        (valid if index % 10 == 0 else train).extend(rows)
    return train, valid


def _extra_row(track_id, vocals, accompaniment):
    """A manifest row whose missing stems are empty strings."""
    infos = [sf.info(str(p)) for p in (vocals, accompaniment) if p]
    return dict(
        ID=track_id,
        duration=round(infos[-1].frames / infos[-1].samplerate, 3),
        sample_rate=infos[-1].samplerate,
        frames=min(i.frames for i in infos),
        channels=infos[-1].channels,
        vocals=str(vocals.resolve()) if vocals else "",
        drums="",
        bass="",
        other=str(accompaniment.resolve()),
    )


def split_validation(rows, valid_fraction):
    """``(train, valid)`` rows: musdb's validation tracks, else the last
    ``valid_fraction``."""
    official = set(_musdb_validation_tracks())
    valid = [r for r in rows if r["ID"] in official]
    if not valid:
        if len(rows) < 2:
            raise ValueError(
                "Need at least 2 train tracks to hold one out for validation, "
                f"got {len(rows)}"
            )
        n_valid = min(
            len(rows) - 1, max(1, math.ceil(valid_fraction * len(rows)))
        )
        valid = rows[-n_valid:]
    valid_ids = {r["ID"] for r in valid}
    return [r for r in rows if r["ID"] not in valid_ids], valid


def decode_stems(root, wav_root):
    """Decode ``<root>/{train,test}/*.stem.mp4`` into the wav layout under
    ``wav_root`` (once)."""
    import musdb

    for subset in SUBSETS:
        for track in musdb.DB(
            root=str(root), is_wav=False, subsets=[subset]
        ).tracks:
            out = Path(wav_root) / subset / track.name
            if all((out / f"{s}.wav").is_file() for s in STEMS):
                continue
            out.mkdir(parents=True, exist_ok=True)
            for stem in STEMS:
                sf.write(
                    out / f"{stem}.wav",
                    track.sources[stem].audio,
                    int(track.rate),
                )
    return Path(wav_root)


def _track_dirs(folder):
    return sorted(d for d in folder.iterdir() if d.is_dir())


def _track_row(track_dir):
    paths = {s: track_dir / f"{s}.wav" for s in STEMS}
    missing = [s for s, p in paths.items() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{track_dir}: missing stem(s) {', '.join(missing)} (.wav)"
        )
    infos = {s: sf.info(str(p)) for s, p in paths.items()}
    first = infos["vocals"]
    for stem, info in infos.items():
        if (info.samplerate, info.frames, info.channels) != (
            first.samplerate,
            first.frames,
            first.channels,
        ):
            raise ValueError(
                f"{track_dir}: {stem}.wav differs from vocals.wav in rate, "
                "length or channels"
            )
    return dict(
        ID=track_dir.name,
        duration=round(first.frames / first.samplerate, 3),
        sample_rate=first.samplerate,
        frames=first.frames,
        channels=first.channels,
        **{s: str(p.resolve()) for s, p in paths.items()},
    )


def _musdb_validation_tracks():
    import importlib.util

    spec = importlib.util.find_spec(
        "musdb"
    )  # the setup file, without importing musdb (needs ffmpeg)
    setup = Path(spec.origin).parent / "configs" / "mus.yaml"
    return yaml.safe_load(setup.read_text())["validation_tracks"]


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _read_json(path):
    return json.loads(path.read_text()) if os.path.isfile(path) else None
