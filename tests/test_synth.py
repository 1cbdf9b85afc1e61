import numpy as np
import pytest
import soundfile as sf

from asteroid_unet import synth

STEMS = ("drums", "bass", "other", "vocals")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return synth.generate(tmp_path_factory.mktemp("synth"), n_train=3, n_test=1, duration=3.0, seed=7)


def _read(folder, name):
    return sf.read(folder / f"{name}.wav", dtype="float64", always_2d=True)


def _songs(root):
    return sorted(p for p in root.glob("*/*") if p.is_dir())


def test_layout_and_stems_sum_to_mixture(synth_root):
    songs = _songs(synth_root)
    assert [p.parent.name for p in songs] == ["test", "train", "train", "train"]
    for song in songs:
        mixture, rate = _read(song, "mixture")
        assert rate == 44100 and mixture.shape == (3 * 44100, 2)
        stems = [_read(song, s)[0] for s in STEMS]
        assert np.abs(mixture - sum(stems)).max() < 1e-4
        vocals, accompaniment = stems[3], sum(stems[:3])
        level_db = 10 * np.log10(np.mean(vocals**2) / np.mean(accompaniment**2))
        assert -7.5 < level_db < -1.3, song.name  # MUSDB18-like vocal levels, never silent


def test_readable_by_musdb(synth_root):
    import musdb

    db = musdb.DB(root=str(synth_root), is_wav=True, subsets="train")
    assert len(db) == 3
    track = db[0]
    assert track.rate == 44100
    assert track.targets["vocals"].audio.shape == track.audio.shape == (3 * 44100, 2)
    accompaniment = sum(track.sources[s].audio for s in ("drums", "bass", "other"))
    np.testing.assert_allclose(track.targets["accompaniment"].audio, accompaniment, atol=1e-6)


def test_readable_by_asteroid_dataset(synth_root):
    from asteroid.data import MUSDB18Dataset

    ds = MUSDB18Dataset(str(synth_root), split="train", sources=list(STEMS), targets=["vocals"],
                        segment=2.0, random_segments=True, sample_rate=44100)
    assert len(ds) == 3
    mix, target = ds[0]
    assert mix.shape == (2, 88200) and target.shape == (1, 2, 88200)


def test_same_seed_same_audio_independent_of_song_count(synth_root, tmp_path):
    again = synth.generate(tmp_path / "a", n_train=1, n_test=0, duration=3.0, seed=7)
    first, repeat = sorted((synth_root / "train").iterdir())[0], _songs(again)[0]
    assert repeat.name == first.name
    for name in STEMS + ("mixture",):
        np.testing.assert_array_equal(_read(first, name)[0], _read(repeat, name)[0])
    other = synth.generate(tmp_path / "b", n_train=1, n_test=0, duration=3.0, seed=8)
    a, b = _read(first, "mixture")[0], _read(_songs(other)[0], "mixture")[0]
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_real_singing_option(tmp_path):
    singing = tmp_path / "singing"
    singing.mkdir()
    tone = 0.3 * np.sin(2 * np.pi * 330 * np.arange(44100 * 4) / 44100)
    sf.write(singing / "tone.wav", tone, 44100)
    root = synth.generate(tmp_path / "out", n_train=4, n_test=0, duration=2.0, seed=1, singing_dir=singing)
    import json

    kinds = {s["vocals"] for s in json.loads((root / "synth.json").read_text())["songs"].values()}
    assert "real singing" in kinds


def test_missing_tools_are_reported(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match="No MIDI files"):
        synth.generate(tmp_path, n_train=1, n_test=0, duration=2, midi_dirs=[tmp_path / "none"])
    with pytest.raises(RuntimeError, match="Soundfont"):
        synth.generate(tmp_path, n_train=1, n_test=0, duration=2, soundfont=tmp_path / "x.sf2")
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="fluidsynth is not installed"):
        synth.generate(tmp_path, n_train=1, n_test=0, duration=2)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="duration"):
        synth.generate(tmp_path, n_train=1, n_test=0, duration=0)
    with pytest.raises(ValueError, match="No MIDI file lasts"):
        synth.generate(tmp_path, n_train=1, n_test=0, duration=10_000)
