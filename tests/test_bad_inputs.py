"""Bad-input corpus: every case through the CLI and the Python API.

Each file is generated here (no committed binaries). A case either separates correctly
or fails with one ``asteroid-unet: error: <file>: <reason>`` line and a non-zero exit,
never a traceback, a hang or a partial output file.
"""
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asteroid_unet import UNet
from asteroid_unet.audio import AudioError
from asteroid_unet.cli import main
from asteroid_unet.separate import separate, separate_file
from asteroid_unet.weights import CheckpointError

ROOT = Path(__file__).resolve().parents[1]
STEMS = ("vocals", "accompaniment")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def tiny_unet():
    torch.manual_seed(0)
    return UNet(n_layers=4, first_channels=4, patch_frames=32, patch_hop=16, n_bins=128).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_unet()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("model") / "tiny.pth"
    torch.save(model.serialize(), path)
    return str(path)


def noise(frames, channels=2, seed=0, scale=0.1):
    return (np.random.default_rng(seed).standard_normal((frames, channels)) * scale).astype(np.float32)


def write(path, data, rate=44100, **kw):
    sf.write(str(path), data, rate, **kw)
    return path


def mp3_bytes(tmp):
    src = write(tmp / "_src.wav", noise(22050))
    dst = tmp / "_src.mp3"
    sf.write(str(dst), sf.read(str(src), dtype="float32")[0], 44100, format="MP3")
    data = dst.read_bytes()
    src.unlink()
    dst.unlink()
    return data


# ---- the corpus: name -> (make(dir) -> path, expectation) ----------------------------------
# expectation: None = separates correctly; a regex = the reason of the one error line
# (a pair: (CLI reason, API reason) where the two entry points word it differently).
CASES = {}


def case(expect=None):
    def register(make):
        CASES[make.__name__] = (make, expect)
        return make

    return register


@case(expect="empty file")
def empty_file(d):
    (d / "empty.wav").write_bytes(b"")
    return d / "empty.wav"


@case()
def truncated_wav(d):
    data = write(d / "_full.wav", noise(22050)).read_bytes()
    (d / "_full.wav").unlink()
    (d / "truncated.wav").write_bytes(data[: len(data) // 2 + 1])  # cut mid-sample too
    return d / "truncated.wav"


@case(expect="not an audio file, or damaged")
def truncated_wav_header(d):
    data = write(d / "_full.wav", noise(22050)).read_bytes()
    (d / "_full.wav").unlink()
    (d / "header.wav").write_bytes(data[:30])
    return d / "header.wav"


@case()
def truncated_mp3(d):
    data = mp3_bytes(d)
    (d / "truncated_mp3.mp3").write_bytes(data[: len(data) // 2])
    return d / "truncated_mp3.mp3"


@case(expect="not an audio file, or damaged")
def truncated_mp3_header(d):
    (d / "header_mp3.mp3").write_bytes(mp3_bytes(d)[:20])
    return d / "header_mp3.mp3"


@case(expect="not an audio file, or damaged")
def random_bytes_named_wav(d):
    (d / "random.wav").write_bytes(np.random.default_rng(1).bytes(5000))
    return d / "random.wav"


@case(expect="not an audio file, or damaged")
def text_named_wav(d):
    (d / "notes.wav").write_text("just some text\n" * 50)
    return d / "notes.wav"


@case(expect="no audio stream")
def text_file(d):
    (d / "notes.txt").write_text("just some text\n" * 50)
    return d / "notes.txt"


@case(expect="not an audio file, or damaged")
def short_text_file(d):
    (d / "hello.txt").write_text("hello world\n")
    return d / "hello.txt"


@case(expect=("folder holds no audio", "is a directory"))
def dir_without_audio(d):
    (d / "no audio here").mkdir()
    (d / "no audio here" / "readme.txt").write_text("hi")
    return d / "no audio here"


@case(expect="no such file")
def missing_path(d):
    return d / "does-not-exist.wav"


@case(expect="not a regular file")
def fifo_named_wav(d):  # a reader that opened it would block forever
    os.mkfifo(d / "pipe.wav")
    return d / "pipe.wav"


@case(expect="no samples")
def zero_samples(d):
    return write(d / "zero.wav", np.zeros((0, 2), np.float32))


@case()
def one_sample(d):
    return write(d / "one.wav", np.array([[0.5, -0.5]], np.float32), subtype="FLOAT")


@case()
def shorter_than_stft_window(d):
    return write(d / "short.wav", noise(300))


@case()
def digital_silence(d):
    return write(d / "silence.wav", np.zeros((22050, 2), np.float32))


@case(expect="NaN or Inf")
def nan_samples(d):
    x = noise(22050)
    x[5000, 1] = np.nan
    return write(d / "nan.wav", x, subtype="FLOAT")


@case(expect="NaN or Inf")
def inf_samples(d):
    x = noise(22050)
    x[20000, 0] = -np.inf
    return write(d / "inf.wav", x, subtype="FLOAT")


@case()
def clipping_full_scale(d):
    return write(d / "clipped.wav", np.clip(noise(22050, scale=3.0), -1, 1), subtype="FLOAT")


@case()
def dc_offset(d):
    return write(d / "dc.wav", noise(22050) + 0.5, subtype="FLOAT")


@case()
def rate_8k(d):
    return write(d / "8k.wav", noise(8000), 8000)


@case()
def rate_192k(d):
    return write(d / "192k.wav", noise(192000 // 4), 192000)


@case()
def rate_44101(d):
    """A rate sharing no factor with the model's but 1: separated on a nearby cheap grid, stems at 44,101 Hz."""
    return write(d / "44101.wav", noise(44101 // 2), 44101)


@case(expect="8 Hz is too low to separate; the lowest is 1000 Hz")
def rate_8hz(d):
    return write(d / "8hz.wav", noise(40), 8)


@case()
def mono(d):
    return write(d / "mono.wav", noise(11025, channels=1), 22050)


@case()
def six_channels(d):
    return write(d / "5.1.wav", noise(11025, channels=6), 22050)


@case()
def wav_8bit(d):
    return write(d / "u8.wav", noise(22050), 22050, subtype="PCM_U8")


@case()
def wav_24bit(d):
    return write(d / "s24.wav", noise(22050), 22050, subtype="PCM_24")


@case()
def wav_float32(d):
    return write(d / "f32.wav", noise(22050), 22050, subtype="FLOAT")


@case()
def wav_float64(d):
    return write(d / "f64.wav", noise(22050).astype(np.float64), 22050, subtype="DOUBLE")


@case()
def mp3(d):
    (d / "song.mp3").write_bytes(mp3_bytes(d))
    return d / "song.mp3"


@case()
def path_with_spaces_and_unicode(d):
    folder = d / "my músic ♫"
    folder.mkdir()
    return write(folder / "Sigur Rós – Hoppípolla (live) 歌.wav", noise(22050), 22050)


# ---- checks shared by both entry points ------------------------------------------------------
def files_under(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else []


def check_stems(src, written):
    """Stems at the input's rate and channels, finite, and summing to the decoded input."""
    assert sorted(written) == sorted(STEMS)
    info = sf.info(str(src))
    stems = {}
    for name, path in written.items():
        out = sf.info(str(path))
        assert out.samplerate == info.samplerate and out.channels == info.channels
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
        assert np.isfinite(data).all()
        if src.suffix != ".mp3":  # mp3 frames carry encoder padding
            assert len(data) == info.frames
        stems[name] = data
    assert not [p for p in written["vocals"].parent.iterdir() if p.name.endswith(".partial")]
    if src.suffix != ".mp3":
        x, _ = sf.read(str(src), dtype="float32", always_2d=True)
        x = np.pad(x, ((0, info.frames - len(x)), (0, 0)))
        np.testing.assert_allclose(stems["vocals"] + stems["accompaniment"], x, atol=1e-4)
        if not x.any():
            assert all(not s.any() for s in stems.values()), "silence in must give silence out"
    return stems


def one_error_line(err, path, reason):
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Warning: Xing")]
    errors = [line for line in lines if line.startswith("asteroid-unet: error:")]
    assert len(errors) == 1, err
    assert str(path) in errors[0] and re.search(reason, errors[0]), errors[0]
    return errors[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_cli(name, tmp_path, model_file, capsys):
    make, expect = CASES[name]
    (tmp_path / "in").mkdir()
    src = make(tmp_path / "in")
    out = tmp_path / "out"
    code = main(["separate", str(src), "-o", str(out), "--model", model_file])
    captured = capsys.readouterr()
    if expect is None:
        assert code == 0, captured.err
        song = out / src.stem
        check_stems(src, {s: next(song.glob(f"{s}.*")) for s in STEMS})
        assert f"vocals: {song}" in captured.out
    else:
        assert code == 1
        one_error_line(captured.err, src, expect if isinstance(expect, str) else expect[0])
        assert files_under(out) == [], "a failed file must leave no output"


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_python_api(name, tmp_path, model):
    make, expect = CASES[name]
    (tmp_path / "in").mkdir()
    src = make(tmp_path / "in")
    out = tmp_path / "out"
    if expect is None:
        check_stems(src, separate_file(src, out, model))
    else:
        with pytest.raises(AudioError) as err:
            separate_file(src, out, model)
        message = str(err.value)
        assert "\n" not in message and re.search(expect if isinstance(expect, str) else expect[1], message)
        assert files_under(out) == []


# ---- array cases through separate() -----------------------------------------------------------
ARRAY_CASES = {
    "zero_samples": (torch.zeros(2, 0), 44100),
    "one_sample": (torch.full((2, 1), 0.5), 44100),
    "shorter_than_stft_window": (torch.randn(2, 300) * 0.1, 44100),
    "digital_silence": (torch.zeros(2, 22050), 22050),
    "clipping_full_scale": ((torch.randn(2, 22050) * 3).clamp(-1, 1), 44100),
    "dc_offset": (torch.randn(2, 22050) * 0.1 + 0.5, 22050),
    "rate_8k": (torch.randn(8000) * 0.1, 8000),
    "rate_192k": (torch.randn(2, 48000) * 0.1, 192000),
    "mono_1d": (torch.randn(22050) * 0.1, 22050),
    "six_channels": (torch.randn(6, 11025) * 0.1, 22050),
    "float64_numpy": (np.random.default_rng(0).standard_normal((2, 22050)) * 0.1, 22050),
}


@pytest.mark.parametrize("name", sorted(ARRAY_CASES))
def test_array_cases_separate(name, model):
    x, rate = ARRAY_CASES[name]
    stems = separate(x, rate, model)
    x = torch.as_tensor(x)
    for s in stems.values():
        assert s.shape == x.shape and torch.isfinite(s).all()
    torch.testing.assert_close((stems["vocals"] + stems["accompaniment"]).to(x.dtype), x, atol=1e-4, rtol=0)
    if not x.any():
        assert all(torch.equal(s, torch.zeros_like(s)) for s in stems.values())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_array_nan_inf_is_a_clear_error(bad, model):
    x = torch.randn(2, 30000) * 0.1
    x[1, 25000] = bad
    with pytest.raises(AudioError, match="NaN or Inf"):
        separate(x, 44100, model)


# ---- output side ------------------------------------------------------------------------------
def song(tmp_path, name="song.wav"):
    return write(tmp_path / name, noise(22050), 22050)


def test_output_dir_under_a_regular_file(tmp_path, model, model_file, capsys):
    """Unwritable even as root: the output folder would have to live inside a file."""
    src = song(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = blocker / "out"
    assert main(["separate", str(src), "-o", str(out), "--model", model_file]) == 1
    one_error_line(capsys.readouterr().err, src, r"cannot create output folder .*(Not a directory|File exists)")
    with pytest.raises(AudioError, match="cannot create output folder"):
        separate_file(src, out, model)
    assert blocker.read_text() == "a file, not a folder"


def test_song_folder_name_taken_by_a_file(tmp_path, model, model_file, capsys):
    src = song(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "song").write_text("in the way")
    assert main(["separate", str(src), "-o", str(tmp_path / "out"), "--model", model_file]) == 1
    one_error_line(capsys.readouterr().err, src, "cannot create output folder")
    with pytest.raises(AudioError, match="cannot create output folder"):
        separate_file(src, tmp_path / "out", model)
    assert (tmp_path / "out" / "song").read_text() == "in the way"


@pytest.mark.skipif(IS_ROOT, reason="root writes through chmod; the regular-file cases above cover unwritable output")
def test_output_dir_without_write_permission(tmp_path, model, model_file, capsys):
    src = song(tmp_path)
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert main(["separate", str(src), "-o", str(out), "--model", model_file]) == 1
        one_error_line(capsys.readouterr().err, src, "cannot create output folder|not writable")
        with pytest.raises(AudioError, match="cannot create output folder|not writable"):
            separate_file(src, out, model)
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o700)


@pytest.mark.skipif(IS_ROOT, reason="root reads through chmod")
def test_unreadable_input(tmp_path, model, model_file, capsys):
    src = song(tmp_path)
    src.chmod(0)
    try:
        assert main(["separate", str(src), "-o", str(tmp_path / "out"), "--model", model_file]) == 1
        one_error_line(capsys.readouterr().err, src, "permission denied")
        with pytest.raises(AudioError, match="permission denied"):
            separate_file(src, tmp_path / "out", model)
    finally:
        src.chmod(0o600)


def test_existing_output_without_force_is_untouched(tmp_path, model, model_file, capsys):
    src = song(tmp_path)
    out = tmp_path / "out"
    assert main(["separate", str(src), "-o", str(out), "--model", model_file]) == 0
    capsys.readouterr()
    # Only one stem exists: still refused, and that stem keeps its bytes.
    (out / "song" / "accompaniment.wav").unlink()
    (out / "song" / "vocals.wav").write_bytes(b"user's own file")
    assert main(["separate", str(src), "-o", str(out), "--model", model_file]) == 1
    one_error_line(capsys.readouterr().err, src, "output exists .*--force")
    with pytest.raises(AudioError, match="output exists"):
        separate_file(src, out, model)
    assert (out / "song" / "vocals.wav").read_bytes() == b"user's own file"
    assert sorted(p.name for p in (out / "song").iterdir()) == ["vocals.wav"]
    assert main(["separate", str(src), "-o", str(out), "--model", model_file, "--force"]) == 0
    check_stems(src, {s: out / "song" / f"{s}.wav" for s in STEMS})


def test_write_error_mid_file_leaves_nothing(tmp_path, model, model_file, monkeypatch, capsys):
    """A disk that fills up while stems are written: one line, no partial or half-written stem."""
    from asteroid_unet import audio

    src = write(tmp_path / "long.wav", noise(8000 * 12, 1), 8000)
    calls = {"n": 0}
    real_write = audio.AtomicWriter.write

    def failing_write(self, block):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(28, "No space left on device")
        real_write(self, block)

    monkeypatch.setattr(audio.AtomicWriter, "write", failing_write)
    assert main(["separate", str(src), "-o", str(tmp_path / "out"), "--model", model_file, "--chunk-seconds", "2"]) == 1
    one_error_line(capsys.readouterr().err, src, "cannot write stems .*No space left")
    calls["n"] = 0
    with pytest.raises(AudioError, match="No space left"):
        separate_file(src, tmp_path / "out", model, chunk_seconds=2)
    assert files_under(tmp_path / "out") == []


def test_interrupt_between_stem_renames_keeps_no_stem(tmp_path, model, monkeypatch):
    """Ctrl-C after the first stem was renamed into place: all stems or none."""
    from asteroid_unet import audio

    src = song(tmp_path)
    real_commit = audio.AtomicWriter.commit
    calls = {"n": 0}

    def commit(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real_commit(self)

    monkeypatch.setattr(audio.AtomicWriter, "commit", commit)
    with pytest.raises(KeyboardInterrupt):
        separate_file(src, tmp_path / "out", model)
    assert files_under(tmp_path / "out") == []
    monkeypatch.setattr(audio.AtomicWriter, "commit", real_commit)
    check_stems(src, separate_file(src, tmp_path / "out", model))


# ---- model files --------------------------------------------------------------------------------
MARKER_NAME = "PWNED-by-pickle"


class _Payload:
    """Unpickling this runs ``open(marker, "w")``: it must never happen."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def make_not_a_checkpoint(d):
    (d / "model.pth").write_text("this is not a checkpoint\n" * 20)
    return d / "model.pth", "not a PyTorch checkpoint"


def make_random_bytes_checkpoint(d):
    (d / "model.pth").write_bytes(np.random.default_rng(3).bytes(4096))
    return d / "model.pth", "(refused|not a PyTorch checkpoint)"


def make_empty_checkpoint(d):
    (d / "model.pth").write_bytes(b"")
    return d / "model.pth", "not a PyTorch checkpoint"


def make_missing_checkpoint(d):
    return d / "nowhere.pth", "no such file"


def make_other_model_checkpoint(d):
    from asteroid.models import ConvTasNet

    other = ConvTasNet(n_src=2, n_blocks=1, n_repeats=1, bn_chan=8, hid_chan=8, skip_chan=8, n_filters=16)
    torch.save(other.serialize(), d / "convtasnet.pth")  # Asteroid's own format, TorchVersion included
    return d / "convtasnet.pth", "a checkpoint for ConvTasNet, not for UNet"


def make_lightning_checkpoint(d):
    torch.save({"state_dict": tiny_unet().state_dict(), "epoch": 3}, d / "last.ckpt")
    return d / "last.ckpt", "not an Asteroid model package"


def make_unet_with_wrong_shapes(d):
    conf = tiny_unet().serialize()
    conf["model_args"]["first_channels"] = 8  # weights are for 4
    torch.save(conf, d / "mismatch.pth")
    return d / "mismatch.pth", "weights do not fit a UNet"


def make_pickled_callable(d):
    conf = tiny_unet().serialize()
    conf["extra"] = _Payload(d / MARKER_NAME)
    torch.save(conf, d / "evil.pth")
    return d / "evil.pth", r"refused: it holds pickled code or objects \((builtins|io)\.open\)"


def make_pickled_callable_legacy(d):
    """The same payload as a bare (non-zip) pickle stream, torch.load's legacy path."""
    with open(d / "evil.pkl", "wb") as f:
        pickle.dump({"model_name": "UNet", "x": _Payload(d / MARKER_NAME)}, f, protocol=2)
    return d / "evil.pkl", "refused"


MODEL_CASES = {f.__name__[5:]: f for f in [
    make_not_a_checkpoint, make_random_bytes_checkpoint, make_empty_checkpoint, make_missing_checkpoint,
    make_other_model_checkpoint, make_lightning_checkpoint, make_unet_with_wrong_shapes,
    make_pickled_callable, make_pickled_callable_legacy,
]}


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_bad_model_file(name, tmp_path, capsys):
    src = song(tmp_path)
    bad, reason = MODEL_CASES[name](tmp_path)
    out = tmp_path / "out"
    assert main(["separate", str(src), "-o", str(out), "--model", str(bad)]) == 2
    line = one_error_line(capsys.readouterr().err, bad, reason)
    assert "\x1b" not in line and len(line) < 250
    with pytest.raises(CheckpointError, match=reason) as err:
        separate_file(src, out, str(bad))
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match=reason):
        separate(torch.zeros(1, 100), 8000, str(bad))
    assert not out.exists()
    assert not (tmp_path / MARKER_NAME).exists(), "the pickled payload ran"


def test_malicious_pickle_does_not_execute_in_a_real_process(tmp_path):
    """The payload really would run under a plain pickle load; the CLI refuses it without running it."""
    bad, _ = make_pickled_callable(tmp_path)
    src = song(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "asteroid_unet", "separate", str(src), "-o", str(tmp_path / "out"), "--model", str(bad)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 2
    one_error_line(proc.stderr, bad, "refused: it holds pickled code")
    assert not (tmp_path / MARKER_NAME).exists()
    torch.load(bad, weights_only=False)  # control: the crafted file is live
    assert (tmp_path / MARKER_NAME).exists()


# ---- the whole corpus in one real process --------------------------------------------------
def test_whole_corpus_in_one_cli_process(tmp_path, model_file):
    """A real ``python -m asteroid_unet`` over every case at once: one line per bad file, the rest done."""
    (tmp_path / "in").mkdir()
    made = {name: (make(tmp_path / "in"), expect) for name, (make, expect) in CASES.items()}
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "asteroid_unet", "separate", *[str(p) for p, _ in made.values()], "-o", str(out),
         "--model", model_file],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("asteroid-unet: error:")]
    bad = {name: p for name, (p, expect) in made.items() if expect is not None}
    assert len(errors) == len(bad), proc.stderr
    for name, (path, expect) in made.items():
        if expect is None:
            check_stems(path, {s: next((out / path.stem).glob(f"{s}.*")) for s in STEMS})
        else:
            reason = expect if isinstance(expect, str) else expect[0]
            assert any(f"error: {path}: " in e and re.search(reason, e) for e in errors), (name, errors)
            assert not (out / path.stem).exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]


def test_debug_shows_the_traceback(tmp_path, model_file, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF garbage")
    assert main(["separate", str(bad), "-o", str(tmp_path / "o"), "--model", model_file, "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and f"error: {bad}:" in err


# ---- a 60-minute file -------------------------------------------------------------------------
LONG_SCRIPT = textwrap.dedent(
    """
    import resource, sys, time
    import torch
    from asteroid_unet import UNet
    from asteroid_unet.cli import main
    from asteroid_unet.separate import separate_file
    src, out, model_path, short = sys.argv[1:5]

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # Warm up on a short file so allocator pools and lazy imports count in the baseline.
    assert main(["separate", short, "-o", out + "/warm", "--model", model_path]) == 0
    base = peak_mb()
    assert main(["separate", src, "-o", out + "/cli", "--model", model_path]) == 0
    cli = peak_mb()
    separate_file(src, out + "/api", model_path)
    api = peak_mb()
    print(f"MEM {base:.0f} {cli:.0f} {api:.0f}")
    """
)


def test_sixty_minute_file_full_length_bounded_memory(tmp_path):
    """Spleeter stops at 600 s; we write every sample of an hour in bounded memory.

    4 kHz mono and a micro model keep it to seconds; the decoded hour is 55 MB of float32 per
    signal, so whole-file processing (input, two stems, their STFTs) would need several times that
    (measured growth over a 20-s file: none).
    """
    rate, seconds = 4000, 3600
    src = tmp_path / "an hour.wav"
    block = noise(rate * 60, 1, scale=0.1)
    with sf.SoundFile(str(src), "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for _ in range(seconds // 60):
            f.write(block)
    short = write(tmp_path / "short.wav", noise(rate * 20, 1), rate, subtype="PCM_16")
    torch.manual_seed(0)
    micro = UNet(sample_rate=1024, n_fft=128, hop_length=96, n_bins=16, patch_frames=16, patch_hop=16,
                 n_layers=2, first_channels=2, kernel_size=3, patch_batch=256)
    model_path = tmp_path / "micro.pth"
    torch.save(micro.serialize(), model_path)
    proc = subprocess.run(
        [sys.executable, "-c", LONG_SCRIPT, str(src), str(tmp_path / "out"), str(model_path), str(short)],
        capture_output=True, text=True, timeout=540, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    base, cli, api = (float(v) for v in re.search(r"MEM (\S+) (\S+) (\S+)", proc.stdout).groups())
    whole_file_mb = rate * seconds * 4 / 2**20  # one float32 copy of the input
    assert cli - base < whole_file_mb and api - base < whole_file_mb, (base, cli, api)
    tail = sf.read(str(src), start=-rate * 10, dtype="float32")[0]
    for run in ("cli", "api"):
        ends = []
        for stem in STEMS:
            path = tmp_path / "out" / run / "an hour" / f"{stem}.wav"
            info = sf.info(str(path))
            assert info.frames == rate * seconds and info.samplerate == rate and info.channels == 1
            ends.append(sf.read(str(path), start=-rate * 10, dtype="float32")[0])
        np.testing.assert_allclose(ends[0] + ends[1], tail, atol=1e-4)  # the last seconds are real output
        shutil.rmtree(tmp_path / "out" / run)


def test_unet_from_pretrained_path_refuses_pickled_code(tmp_path):
    """``UNet.from_pretrained(path)`` (used by the recipes) goes through the same weights-only loader."""
    bad, reason = make_pickled_callable(tmp_path)
    with pytest.raises(CheckpointError, match=reason):
        UNet.from_pretrained(str(bad))
    assert not (tmp_path / MARKER_NAME).exists()
    good = tmp_path / "good.pth"
    model = tiny_unet()
    torch.save(model.serialize(), good)
    x = torch.randn(1, 8192)
    with torch.no_grad():
        torch.testing.assert_close(UNet.from_pretrained(str(good)).eval()(x), model(x))
        torch.testing.assert_close(UNet.from_pretrained(good).eval()(x), model(x))


def test_every_checkpoint_load_in_the_package_is_weights_only():
    """Audit: each ``torch.load(`` call in asteroid_unet/ passes ``weights_only=True``."""
    calls = []
    for path in sorted((ROOT / "asteroid_unet").glob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(", text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            calls.append((path.name, text[match.start(): end + 1]))
    assert calls, "no torch.load found: the audit would be vacuous"
    unsafe = [(name, call) for name, call in calls if "weights_only=True" not in call]
    assert unsafe == []


def test_a_flac_whose_header_gives_no_length_is_decoded_to_find_it(tmp_path, small_model, model_file):
    """libsndfile reports 2**63 - 1 frames for such a file (a FLAC streamed without its total): that
    read as "209146758205324 s long", and separating it never ended."""
    import math

    from asteroid_unet.audio import AudioReader, probe

    song = tmp_path / "lengthless.flac"
    sf.write(str(song), 0.1 * np.random.default_rng(0).standard_normal((3 * 8000, 2)).astype(np.float32), 8000,
             subtype="PCM_16")
    header = bytearray(song.read_bytes())
    header[21] &= 0xF0  # STREAMINFO's 36-bit total of samples: 0, "unknown"
    header[22:26] = bytes(4)
    song.write_bytes(bytes(header))
    assert sf.info(str(song)).frames > 2**62
    info = probe(song)
    assert math.isnan(info.seconds) and (info.channels, info.sample_rate, info.soundfile) == (2, 8000, False)
    with AudioReader(song) as reader:
        assert (reader.frames, reader.channels, reader.sample_rate) == (3 * 8000, 2, 8000)
    stems = separate_file(song, tmp_path / "out", small_model)
    assert sf.info(str(stems["vocals"])).frames == 3 * 8000
    assert main(["separate", str(song), "-o", str(tmp_path / "cli"), "--model", model_file]) == 0
    assert sf.info(str(tmp_path / "cli" / "lengthless" / "vocals.flac")).frames == 3 * 8000
