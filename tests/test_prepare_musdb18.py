"""Data preparation of the SpeechBrain MUSDB18 recipe."""
import csv
import sys
from pathlib import Path

import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes" / "MUSDB18"))
from prepare_musdb18 import decode_stems, prepare_musdb18  # noqa: E402

from conftest import write_tiny_musdb  # noqa: E402

PREVIEW = Path("/work/shared/data/musdb-preview")


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_manifests_of_a_wav_tree(tiny_musdb, tmp_path):
    prepare_musdb18(tiny_musdb, tmp_path / "save")
    train, valid, test = (read(tmp_path / "save" / f"{s}.csv") for s in ("train", "valid", "test"))
    assert [r["ID"] for r in train] == ["train song 0", "train song 1"]
    assert [r["ID"] for r in valid] == ["train song 2"]  # no official name: the last 14 % (at least 1)
    assert [r["ID"] for r in test] == ["test song 0"]
    row = test[0]
    assert (int(row["sample_rate"]), int(row["channels"]), int(row["frames"])) == (44100, 2, 3 * 44100)
    assert sf.info(row["vocals"]).frames == 3 * 44100


def test_official_validation_tracks_are_used(tmp_path):
    root = write_tiny_musdb(tmp_path / "m", n_train=3, seconds=0.5)
    (root / "train" / "train song 1").rename(root / "train" / "Actions - One Minute Smile")
    prepare_musdb18(root, tmp_path / "save")
    assert [r["ID"] for r in read(tmp_path / "save" / "valid.csv")] == ["Actions - One Minute Smile"]
    assert len(read(tmp_path / "save" / "train.csv")) == 2


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "test").rename(root / "elsewhere"), "not a MUSDB18 root"),
        (lambda root: (root / "train" / "train song 0" / "bass.wav").unlink(), "missing stem"),
        (lambda root: [d.rename(root / d.name) for d in list((root / "train").iterdir())[1:]], "at least 2 train"),
    ],
)
def test_bad_trees_give_clear_errors(tmp_path, damage, message):
    root = write_tiny_musdb(tmp_path / "m", seconds=0.5)
    damage(root)
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        prepare_musdb18(root, tmp_path / "save")


@pytest.mark.skipif(not PREVIEW.is_dir(), reason="needs ../shared/data/musdb-preview")
def test_stem_mp4_release_is_decoded_once(tmp_path):
    pytest.importorskip("musdb")  # needs ffmpeg
    wav_root = decode_stems(PREVIEW, tmp_path / "wav")
    vocals = wav_root / "test" / "The Easton Ellises - Falcon 69" / "vocals.wav"
    info = sf.info(str(vocals))
    assert (info.samplerate, info.channels) == (44100, 2) and info.frames > 6 * 44100
    stamp = vocals.stat().st_mtime_ns
    decode_stems(PREVIEW, tmp_path / "wav")
    assert vocals.stat().st_mtime_ns == stamp
    # The layout is detected (decoded, not "No tracks in .../train"); the two previews hold one train
    # track: too few to hold one out for validation.
    with pytest.raises(ValueError, match="at least 2 train tracks"):
        prepare_musdb18(PREVIEW, tmp_path / "save")


def test_extra_roots_add_pairs_and_instrumental_rows(tiny_musdb, tmp_path):
    """The same extra data as the Asteroid recipe's --extra_roots: MIR-1K-style pairs (every 10th
    song validates) and instrumental music (accompaniment only), with empty cells for missing stems."""
    import numpy as np

    pairs = tmp_path / "pairs"
    for song in range(2):
        for clip in (1, 2):
            folder = pairs / f"singer_{song}_{clip:02d}"
            folder.mkdir(parents=True)
            for source in ("vocals", "accompaniment"):
                sf.write(folder / f"{source}.flac", np.full(1600, 0.1, np.float32), 16000)
    music = tmp_path / "music"
    music.mkdir()
    for name in ("a.ogg", "choir.ogg"):
        sf.write(music / name, np.zeros((22050, 2), np.float32), 22050)
    save = tmp_path / "save"
    prepare_musdb18(tiny_musdb, save, extra_roots=[f"pairs:{pairs}", f"instrumental:{music}"],
                    instrumental_exclude=["choir.ogg"])
    train, valid = read(save / "train.csv"), read(save / "valid.csv")
    assert [r["ID"] for r in valid] == ["train song 2", "pairs-singer_0_01", "pairs-singer_0_02"]
    assert [r["ID"] for r in train][2:] == ["pairs-singer_1_01", "pairs-singer_1_02", "music-a"]
    clip, instrumental = train[2], train[4]
    assert (clip["drums"], clip["bass"]) == ("", "") and clip["vocals"].endswith("vocals.flac")
    assert clip["other"].endswith("accompaniment.flac") and int(clip["frames"]) == 1600
    assert instrumental["vocals"] == "" and instrumental["other"].endswith("a.ogg")
    with pytest.raises(ValueError, match="pairs:DIR or instrumental:DIR"):
        prepare_musdb18(tiny_musdb, tmp_path / "again", extra_roots=[f"karaoke:{pairs}"])
