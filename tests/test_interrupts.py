"""Interrupted and repeated separation, with real CLI processes.

``asteroid-unet separate`` killed mid-file leaves no stem file: with SIGINT nothing at all
remains; after SIGKILL only hidden ``.<stem>.<fmt>.partial`` temp files may remain, and the
next run into the same folder removes them and completes without ``--force``. Two runs on
the same input and weights write bit-identical stems on the CPU.
"""
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asteroid_unet import UNet
from asteroid_unet.separate import separate_file

ROOT = Path(__file__).resolve().parents[1]
STEMS = ("vocals", "accompaniment")
RATE = 8000


def cli(*args):
    return [sys.executable, "-m", "asteroid_unet", "separate", *map(str, args)]


def run(*args):
    proc = subprocess.run(cli(*args), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 4-minute 8 kHz song, a tiny model, and the stems of one clean run (the reference)."""
    d = tmp_path_factory.mktemp("interrupts")
    t = np.arange(RATE * 240) / RATE
    x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)
    song = d / "song.wav"
    sf.write(str(song), x.astype(np.float32), RATE, subtype="PCM_16")
    torch.manual_seed(0)
    model = d / "tiny.pth"
    torch.save(UNet(n_layers=4, first_channels=4, patch_frames=32, patch_hop=16, n_bins=128).serialize(), model)
    run(song, "-o", d / "reference", "--model", model)
    reference = {s: (d / "reference" / "song" / f"{s}.wav").read_bytes() for s in STEMS}
    return song, model, reference


def start_and_interrupt(song, model, out, sig):
    """Start a slow (1 s chunks) separation, wait until stems are being written, send ``sig``."""
    proc = subprocess.Popen(
        cli(song, "-o", out, "--model", model, "--chunk-seconds", 1),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell may ignore SIGINT
    )
    partial = out / "song" / ".vocals.wav.partial"
    deadline = time.monotonic() + 240
    while not (partial.exists() and partial.stat().st_size > 5 * RATE * 4):  # a few chunks are on disk
        assert proc.poll() is None, f"separation ended before it could be interrupted: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "separation never started writing"
        time.sleep(0.01)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stdout, stderr


def stem_files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def assert_rerun_completes(song, model, out, reference):
    proc = run(song, "-o", out, "--model", model)  # no --force: nothing of the killed run counts as output
    assert "vocals:" in proc.stdout
    assert stem_files(out / "song") == ["accompaniment.wav", "vocals.wav"]  # the stale temp files are gone
    for s in STEMS:
        assert (out / "song" / f"{s}.wav").read_bytes() == reference[s]


def test_sigkill_mid_file_leaves_no_stem_and_rerun_completes(setup, tmp_path):
    song, model, reference = setup
    out = tmp_path / "out"
    code, _, _ = start_and_interrupt(song, model, out, signal.SIGKILL)
    assert code == -signal.SIGKILL
    left = stem_files(out / "song")
    assert not {"vocals.wav", "accompaniment.wav"} & set(left)
    assert left and all(name.startswith(".") and name.endswith(".partial") for name in left)
    (out / "song" / ".accompaniment.flac.partial").write_bytes(b"left by an earlier killed --format flac run")
    assert_rerun_completes(song, model, out, reference)  # and removes the temp files of both killed runs


def test_sigint_mid_file_leaves_nothing_and_rerun_completes(setup, tmp_path):
    song, model, reference = setup
    out = tmp_path / "out"
    code, _, stderr = start_and_interrupt(song, model, out, signal.SIGINT)
    assert code == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert stem_files(out) == [], "after Ctrl-C no file and no empty song folder remains"
    assert_rerun_completes(song, model, out, reference)


def test_cpu_runs_are_bit_identical(setup, tmp_path):
    """Two CLI processes, and the Python API twice, with the paper-size model: identical bytes."""
    song, _, _ = setup
    rng = np.random.default_rng(1)
    stereo = tmp_path / "stereo.wav"
    sf.write(str(stereo), (rng.standard_normal((44100 * 8, 2)) * 0.1).astype(np.float32), 44100, subtype="PCM_24")
    torch.manual_seed(1)
    paper = UNet()
    model = tmp_path / "paper.pth"
    torch.save(paper.serialize(), model)
    for n in (1, 2):
        run(stereo, "-o", tmp_path / f"cli{n}", "--model", model)
        separate_file(stereo, tmp_path / f"api{n}", str(model))
    for s in STEMS:
        cli_bytes = [(tmp_path / f"cli{n}" / "stereo" / f"{s}.wav").read_bytes() for n in (1, 2)]
        api_bytes = [(tmp_path / f"api{n}" / "stereo" / f"{s}.wav").read_bytes() for n in (1, 2)]
        assert cli_bytes[0] == cli_bytes[1] and api_bytes[0] == api_bytes[1]
        assert sf.read(str(tmp_path / "cli1" / "stereo" / f"{s}.wav"))[0].any()  # not trivially equal
