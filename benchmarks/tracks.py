"""The benchmarks' evaluation tracks, read once for every benchmark: real music never used for training.

- :func:`load_test_previews`: the MUSDB18-7 previews of ``../shared/data/musdb18-7`` (the 25 test
  previews, or musdb's 14 validation previews of the train subset);
- :func:`load_tracks`: the three shared tracks (two MUSDB18 previews and the 8 kHz clips).

Every loader returns ``{name: {"rate": int, "refs": {"vocals": (n, 2), "accompaniment": (n, 2)}}}``
float64, accompaniment = drums + bass + other (or mix - vocals). ``$ASTEROID_UNET_DATA`` moves the
data folder.
"""
import os
from pathlib import Path
from typing import Dict

import numpy as np
import soundfile as sf

DATA = Path(os.environ.get("ASTEROID_UNET_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def load_tracks(data: Path = DATA) -> Dict[str, dict]:
    """``{name: {"rate": int, "refs": {"vocals": (n, 2), "accompaniment": (n, 2)}}}`` float64."""
    import musdb

    tracks = {}
    for subset, name in (("train", "80s Rock"), ("test", "Falcon 69")):
        db = musdb.DB(root=str(data / "musdb-preview"), subsets=subset)
        (track,) = [t for t in db.tracks if name in t.name]
        src = {k: track.sources[k].audio.astype(np.float64) for k in ("drums", "bass", "other", "vocals")}
        tracks[name] = {"rate": int(track.rate),
                        "refs": {"vocals": src["vocals"], "accompaniment": src["drums"] + src["bass"] + src["other"]}}
    clips = data / "musdb-clips-8k"
    mix, voc, rate = [], [], None
    for i in range(57):
        m, rate = sf.read(clips / "mix" / f"mix1_{i}.wav", dtype="float64")
        v, _ = sf.read(clips / "vocal" / f"vocal1_{i}.wav", dtype="float64")
        n = min(len(m), len(v))
        mix.append(m[:n])
        voc.append(v[:n])
    mix, voc = np.concatenate(mix), np.concatenate(voc)
    stereo = lambda x: np.stack([x, x], axis=1)
    tracks["clips-8k"] = {"rate": int(rate), "refs": {"vocals": stereo(voc), "accompaniment": stereo(mix - voc)}}
    return tracks



def load_test_previews(data: Path = DATA, subset: str = "test", split=None) -> Dict[str, dict]:
    """The MUSDB18-7 test previews in :func:`load_tracks`'s format, keyed by musdb's track name
    (``subset="train", split="valid"``: musdb's validation previews instead)."""
    import musdb

    tracks = {}
    for track in musdb.DB(root=str(data / "musdb18-7"), subsets=subset, split=split).tracks:
        src = {k: track.sources[k].audio.astype(np.float64) for k in ("drums", "bass", "other", "vocals")}
        tracks[track.name] = {"rate": int(track.rate),
                              "refs": {"vocals": src["vocals"], "accompaniment": src["drums"] + src["bass"] + src["other"]}}
    return tracks
