"""Training data from real folders: stage 0's extra-data scripts and the chunks that cross track ends."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asteroid_unet.data import FixedChunks, RandomChunks, load_tracks
from helpers import run_script

LOCAL = Path(__file__).resolve().parents[1] / "egs" / "musdb18" / "local"


def run_local(script, *args):
    """A stage-0 script run as ``python local/<script> ARGS --jobs 1``, in this process; its stdout."""
    return run_script(LOCAL / script, *args, "--jobs", "1")


def ramp_track(folder, start, n, rate=8192, vocals_silent=False):
    """A prepared track whose accompaniment counts samples from ``start`` (so chunks show where they came from)."""
    folder.mkdir(parents=True)
    accompaniment = (start + np.arange(n)).astype(np.float32)
    vocals = np.zeros(n, np.float32) if vocals_silent else -accompaniment
    sf.write(folder / "accompaniment.wav", accompaniment, rate, subtype="FLOAT")
    sf.write(folder / "vocals.wav", vocals, rate, subtype="FLOAT")


def test_chunks_cross_track_ends_so_short_tracks_train(tmp_path):
    for i in range(3):  # three tracks of 0.5 s, each shorter than the 1 s chunk
        ramp_track(tmp_path / "train" / f"t{i}", 10_000 * i, 4096)
    tracks = load_tracks(tmp_path, "train", ["vocals", "accompaniment"], 8192)
    chunks = RandomChunks(tracks, ["vocals", "accompaniment"], length=8192, n_chunks=5, random_track_mix=False)
    assert len(chunks) == 5
    mix, targets = chunks[0]
    assert mix.shape == (1, 8192) and targets.shape == (2, 1, 8192)
    assert torch.equal(mix[0], targets[0, 0] + targets[1, 0])
    assert torch.count_nonzero(mix) == 0  # aligned sources: vocals = -accompaniment everywhere
    # The chunk spans two tracks: its values jump from one track's counter to the next.
    jumps = torch.nonzero(targets[1, 0].diff() != 1).flatten()
    assert len(jumps) >= 1 and len(jumps) <= 2


def test_remixing_leaves_silent_vocals_out_and_gains_stay_in_range(tmp_path):
    ramp_track(tmp_path / "train" / "song", 1, 8192)
    ramp_track(tmp_path / "train" / "instrumental", 50_000, 8192, vocals_silent=True)
    tracks = load_tracks(tmp_path, "train", ["vocals", "accompaniment"], 8192)
    chunks = RandomChunks(tracks, ["vocals"], length=1024, n_chunks=50, gain_range=(0.5, 0.75))
    assert chunks.stream_lengths == {"vocals": 8192, "accompaniment": 16384}
    for i in range(50):
        _, targets = chunks[i]
        steps = targets[0, 0].diff()  # vocals = -gain * consecutive counter values
        assert (targets[0, 0] < 0).all()  # never a window of the instrumental's silent vocals
        assert torch.allclose(steps, steps[0], atol=1e-3) and -0.75 - 1e-4 <= steps[0] <= -0.5 + 1e-4
    generator = torch.Generator().manual_seed(0)
    mix, targets = chunks.batch(8, generator, torch.device("cpu"))
    assert mix.shape == (8, 1024) and targets.shape == (8, 1, 1024)
    gains = targets[:, 0, 0] - targets[:, 0, 1]
    assert (targets < 0).all() and ((gains >= 0.5 - 1e-4) & (gains <= 0.75 + 1e-4)).all()


def test_validation_chunks_pad_short_tracks(tmp_path):
    ramp_track(tmp_path / "valid" / "short", 1, 3000)
    ramp_track(tmp_path / "valid" / "long", 1, 2500 * 3)
    tracks = load_tracks(tmp_path, "valid", ["vocals", "accompaniment"], 8192)
    chunks = FixedChunks(tracks, ["vocals", "accompaniment"], length=2500, max_per_track=2)
    assert len(chunks) == 2 + 2  # "long" (3 chunks) stops at max_per_track; "short" pads its second chunk
    _, second = chunks[3]
    assert second.shape == (2, 1, 2500)
    assert torch.equal(second[1, 0, :500], torch.arange(2501, 3001.0)) and torch.count_nonzero(second[:, 0, 500:]) == 0
    mix, _ = FixedChunks(tracks[1:], ["accompaniment"], length=4096, max_per_track=4)[0]
    assert mix.shape == (1, 4096) and torch.count_nonzero(mix) == 0  # vocals = -accompaniment, padding = 0


def test_pairs_are_joined_per_song_with_a_fixed_validation_slice(tmp_path):
    root = tmp_path / "pairs"
    for song in range(3):
        for clip in (2, 1):  # written out of order: the join follows the clip number
            folder = root / f"singer_{song}_{clip:02d}"
            folder.mkdir(parents=True)
            for source, sign in (("vocals", 1), ("accompaniment", -1)):
                sf.write(folder / f"{source}.flac", sign * np.full(1600, 0.1 * clip, np.float32), 16000)
    out = tmp_path / "prepared"
    stdout = run_local("prepare_pairs.py", "--root", root, "--out", out, "--valid_every", "3", "--prefix", "p")
    assert "6 clips joined into 3 songs: 2 train, 1 valid" in stdout
    assert sorted(p.name for p in (out / "train").iterdir()) == ["p-singer_1", "p-singer_2"]
    assert [p.name for p in (out / "valid").iterdir()] == ["p-singer_0"]
    vocals, rate = sf.read(out / "train" / "p-singer_1" / "vocals.wav")
    assert rate == 8192 and len(vocals) == 2 * 820  # 1600 samples at 16 kHz: 819.2 at 8192 Hz
    assert abs(vocals[400] - 0.1) < 1e-3 and abs(vocals[1200] - 0.2) < 1e-3  # clip 01, then clip 02
    assert "already prepared" in run_local("prepare_pairs.py", "--root", root, "--out", out, "--valid_every", "3",
                                           "--prefix", "p")


def test_instrumental_files_become_accompaniment_with_silent_vocals(tmp_path):
    root = tmp_path / "music"
    root.mkdir()
    for name in ("a.ogg", "choir.ogg"):
        sf.write(root / name, 0.1 * np.ones((22050, 2), np.float32), 22050)
    out = tmp_path / "prepared"
    stdout = run_local("prepare_instrumental.py", "--root", root, "--out", out, "--exclude", "choir.ogg")
    assert "1 instrumental tracks" in stdout and "1 excluded" in stdout
    track = out / "train" / "music-a"
    accompaniment, rate = sf.read(track / "accompaniment.wav")
    vocals, _ = sf.read(track / "vocals.wav")
    assert rate == 8192 and len(accompaniment) == 8192 and not vocals.any()
    assert json.loads((out / ".prepared" / "music.json").read_text())["tracks"] == {"train": ["music-a"]}


def test_a_missing_folder_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, str(LOCAL / "prepare_pairs.py"), "--root", str(tmp_path / "nope"),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert out.returncode != 0 and out.stderr.strip().splitlines() == [f"error: --root {tmp_path / 'nope'} is not a folder"]
