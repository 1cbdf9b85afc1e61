"""The output, naming, selection, range and progress options of ``asteroid-unet separate``, on real files:
sample formats read back with soundfile, bitrates and codecs read with ffprobe, template paths, stem
selection, ranges against the same samples of a whole-song separation, and the progress lines."""
import json
import os
import pty
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import asteroid_unet
from asteroid_unet import files
from asteroid_unet.cli import main
from asteroid_unet.separator import separator_for

RATE = 22050
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                  reason="needs ffmpeg and ffprobe")


def noise(seconds, rate=RATE, channels=2, seed=0):
    return (np.random.default_rng(seed).standard_normal((int(seconds * rate), channels)) * 0.1).astype(np.float32)


@pytest.fixture
def model_file(tmp_path, small_model):
    path = tmp_path / "tiny.pth"
    torch.save(small_model.serialize(), path)
    return str(path)


def separate(*args):
    return main(["separate", *map(str, args)])


def ffprobe(path, entries="stream=codec_name,sample_rate,bit_rate"):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"][0]


@pytest.mark.parametrize("subtype, flags, fmt, expected", [
    ("PCM_16", [], "wav", "PCM_16"),  # lossless input: its own
    ("PCM_24", [], "wav", "PCM_24"),
    ("FLOAT", [], "wav", "FLOAT"),
    ("PCM_16", ["--sample-format", "float32"], "wav", "FLOAT"),
    ("FLOAT", ["--sample-format", "int24"], "wav", "PCM_24"),
    ("PCM_24", ["--format", "flac"], "flac", "PCM_24"),
    ("FLOAT", ["--format", "flac"], "flac", "PCM_24"),  # FLAC has no float: its widest
])
def test_sample_format_defaults_to_the_lossless_inputs_own(tmp_path, model_file, subtype, flags, fmt, expected):
    sf.write(tmp_path / "song.wav", noise(1), RATE, subtype=subtype)
    assert separate(tmp_path / "song.wav", "-o", tmp_path / "out", "--model", model_file, *flags) == 0
    for stem in ("vocals", "accompaniment"):
        assert sf.info(tmp_path / "out" / "song" / f"{stem}.{fmt}").subtype == expected


def test_lossy_input_gives_16_bit_stems(tmp_path, model_file):
    sf.write(tmp_path / "song.mp3", noise(1), RATE)
    assert separate(tmp_path / "song.mp3", "-o", tmp_path / "out", "--model", model_file, "--format", "wav") == 0
    assert sf.info(tmp_path / "out" / "song" / "vocals.wav").subtype == "PCM_16"


def test_float_flac_is_refused_in_one_line(tmp_path, model_file, capsys):
    sf.write(tmp_path / "song.wav", noise(1), RATE)
    code = separate(tmp_path / "song.wav", "-o", tmp_path / "out", "--model", model_file, "--format", "flac",
                    "--sample-format", "float32")
    assert code == 2 and not (tmp_path / "out").exists()
    assert capsys.readouterr().err.strip().splitlines() == [
        "asteroid-unet: error: FLAC stores integer samples: use --sample-format int16 or int24, "
        "or --format wav for float32"]


def test_integer_stems_clip_at_full_scale_never_wrap(tmp_path, small_model):
    """A square wave near full scale through a model with near-binary masks: a stem overshoots 1 (the
    float stem shows it), and its 16-bit file holds the clipped value, not a wrapped-around one."""
    with torch.no_grad():
        small_model.masker.last.weight.mul_(50)  # masks close to 0 or 1: stems lose harmonics and overshoot
    t = np.arange(3 * RATE) / RATE
    square = 0.999 * np.sign(np.sin(2 * np.pi * 110 * t))
    sf.write(tmp_path / "loud.wav", np.stack([square, square], 1), RATE, subtype="PCM_16")
    floats = files.separate_file(tmp_path / "loud.wav", tmp_path / "f", small_model, sample_format="float32")
    ints = files.separate_file(tmp_path / "loud.wav", tmp_path / "i", small_model)
    for stem in ("vocals", "accompaniment"):
        assert sf.info(ints[stem]).subtype == "PCM_16"
        exact = sf.read(floats[stem], dtype="float64")[0]
        written = sf.read(ints[stem], dtype="float64")[0]
        np.testing.assert_allclose(written, np.clip(exact, -1, 1), atol=2 / 32768)
    overshoot = max(np.abs(sf.read(floats[s])[0]).max() for s in floats)
    assert overshoot > 1.02  # the test would catch a wrap: such samples would come back near -1


@needs_ffmpeg
@pytest.mark.parametrize("flags, kbps", [([], 320), (["--mp3-bitrate", "128"], 128), (["--mp3-bitrate", "192"], 192)])
def test_mp3_bitrate(tmp_path, model_file, flags, kbps):
    sf.write(tmp_path / "song.wav", noise(2, 44100), 44100)
    assert separate(tmp_path / "song.wav", "-o", tmp_path / "out", "--model", model_file, "--format", "mp3", *flags) == 0
    for stem in ("vocals", "accompaniment"):
        found = ffprobe(tmp_path / "out" / "song" / f"{stem}.mp3")
        assert (found["codec_name"], int(found["bit_rate"])) == ("mp3", kbps * 1000)


@needs_ffmpeg
@pytest.mark.parametrize("fmt, rate, codec", [
    ("ogg", RATE, "vorbis"),  # soundfile
    ("opus", 48000, "opus"),  # soundfile: a rate libsndfile's Opus takes
    ("opus", RATE, "opus"),  # ffmpeg: a rate it does not
    ("m4a", RATE, "aac"),  # ffmpeg
])
def test_ogg_opus_and_m4a_stems(tmp_path, model_file, fmt, rate, codec):
    sf.write(tmp_path / "song.wav", noise(2, rate), rate)
    assert separate(tmp_path / "song.wav", "-o", tmp_path / "out", "--model", model_file, "--format", fmt) == 0
    folder = tmp_path / "out" / "song"
    assert sorted(p.name for p in folder.iterdir()) == [f"accompaniment.{fmt}", f"vocals.{fmt}"]  # no temporary left
    for stem in ("vocals", "accompaniment"):
        found = ffprobe(folder / f"{stem}.{fmt}", "stream=codec_name,channels,duration")
        assert (found["codec_name"], found["channels"]) == (codec, 2)
        assert abs(float(found["duration"]) - 2) < 0.1


def test_a_format_no_encoder_writes_is_one_line(tmp_path, model_file, monkeypatch, capsys):
    sf.write(tmp_path / "song.wav", noise(1), RATE)
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # no ffmpeg; soundfile has no m4a
    code = separate(tmp_path / "song.wav", "-o", tmp_path / "out", "--model", model_file, "--format", "m4a")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"asteroid-unet: error: {tmp_path / 'song.wav'}: cannot write m4a at {RATE} Hz: "
                                 "soundfile cannot, and ffmpeg is not installed"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_filename_template(tmp_path, model_file):
    sf.write(tmp_path / "song.flac", noise(1), RATE)
    assert separate(tmp_path / "song.flac", "-o", tmp_path / "out", "--model", model_file,
                    "--filename", "{model}/{stem}/{track}-{trackext}.{ext}") == 0
    found = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert found == ["tiny/accompaniment/song-flac.flac", "tiny/vocals/song-flac.flac"]
    assert sf.info(tmp_path / "out" / "tiny" / "vocals" / "song-flac.flac").frames == RATE


@pytest.mark.parametrize("template, says", [
    ("{track}/{instrument}.{ext}", "unknown field {instrument}"),
    ("{track}.{ext}", "lacks {stem}"),
    ("../{stem}.{ext}", "must stay inside the output folder"),
    ("{track/{stem}.{ext}", "--filename"),
])
def test_bad_templates_are_one_line_before_any_work(tmp_path, model_file, capsys, template, says):
    sf.write(tmp_path / "song.wav", noise(1), RATE)
    assert separate(tmp_path / "song.wav", "-o", tmp_path / "out", "--model", model_file, "--filename", template) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and not (tmp_path / "out").exists()


def test_inputs_that_would_write_the_same_file_are_caught_before_any_work(tmp_path, model_file, capsys):
    for ext in ("mp3", "flac"):
        sf.write(tmp_path / f"song.{ext}", noise(1), RATE)
    inputs = [tmp_path / "song.mp3", tmp_path / "song.flac"]
    assert separate(*inputs, "-o", tmp_path / "out", "--model", model_file, "--format", "wav") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{inputs[0]} and {inputs[1]} would both write {tmp_path / 'out' / 'song' / 'vocals.wav'}" in err[0]
    assert not (tmp_path / "out").exists()
    # the remedy the line gives works:
    assert separate(*inputs, "-o", tmp_path / "out", "--model", model_file, "--format", "wav",
                    "--filename", "{track}.{trackext}/{stem}.{ext}") == 0
    assert (tmp_path / "out" / "song.mp3" / "vocals.wav").exists() and (tmp_path / "out" / "song.flac" / "vocals.wav").exists()


def test_stem_selection_in_the_cli_and_the_api(tmp_path, model_file, small_model, capsys):
    sf.write(tmp_path / "song.wav", noise(1), RATE, subtype="FLOAT")
    assert separate(tmp_path / "song.wav", "-o", tmp_path / "all", "--model", model_file) == 0
    assert separate(tmp_path / "song.wav", "-o", tmp_path / "one", "--model", model_file, "--stems", "accompaniment") == 0
    assert [p.name for p in (tmp_path / "one" / "song").iterdir()] == ["accompaniment.wav"]
    assert ((tmp_path / "one" / "song" / "accompaniment.wav").read_bytes()
            == (tmp_path / "all" / "song" / "accompaniment.wav").read_bytes())
    written = asteroid_unet.separate_file(tmp_path / "song.wav", tmp_path / "api", small_model, stems="vocals")
    assert list(written) == ["vocals"] and written["vocals"].read_bytes() == (tmp_path / "all" / "song" / "vocals.wav").read_bytes()
    mix = torch.from_numpy(noise(1).T)
    both = asteroid_unet.separate(mix, RATE, small_model)
    only = asteroid_unet.separate(mix, RATE, small_model, stems=["vocals"])
    assert list(only) == ["vocals"] and torch.equal(only["vocals"], both["vocals"])
    capsys.readouterr()
    assert separate(tmp_path / "song.wav", "-o", tmp_path / "x", "--model", model_file, "--stems", "drums") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "asteroid-unet: error: unknown stem 'drums'; this model writes vocals, accompaniment"]


def range_check(full, part, mix, start, length):
    """The range's stems: exactly ``length`` samples summing to the mix's own, and the stems of the whole-song
    separation at the same samples to 25 dB (only the context beyond the range differs)."""
    vocals, accompaniment = (sf.read(part[s], dtype="float64")[0] for s in ("vocals", "accompaniment"))
    assert len(vocals) == length
    np.testing.assert_allclose(vocals + accompaniment, mix[start : start + length], atol=1e-5)
    reference = sf.read(full["vocals"], dtype="float64")[0][start : start + length]
    snr = 10 * np.log10((reference ** 2).sum() / ((reference - vocals) ** 2).sum())
    assert snr > 25, snr


def test_offset_and_duration_soundfile_seeks(tmp_path, model_file):
    mix = noise(6)
    sf.write(tmp_path / "song.wav", mix, RATE, subtype="FLOAT")
    assert separate(tmp_path / "song.wav", "-o", tmp_path / "full", "--model", model_file) == 0
    assert separate(tmp_path / "song.wav", "-o", tmp_path / "part", "--model", model_file,
                    "--offset", "2", "--duration", "2.5") == 0
    full, part = ({s: tmp_path / d / "song" / f"{s}.wav" for s in ("vocals", "accompaniment")} for d in ("full", "part"))
    range_check(full, part, mix, 2 * RATE, int(2.5 * RATE))


@needs_ffmpeg
def test_offset_and_duration_ffmpeg_decodes_only_the_range(tmp_path, small_model):
    """ALAC in m4a: lossless, and read through ffmpeg (``-ss``/``-t``), not soundfile."""
    mix = noise(6)
    sf.write(tmp_path / "src.wav", mix, RATE, subtype="PCM_24")
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "src.wav"), "-c:a", "alac", str(tmp_path / "song.m4a")],
                   check=True)
    mix = sf.read(tmp_path / "src.wav", dtype="float64")[0]
    full = files.separate_file(tmp_path / "song.m4a", tmp_path / "full", small_model, sample_format="float32")
    part = files.separate_file(tmp_path / "song.m4a", tmp_path / "part", small_model, sample_format="float32",
                               offset=1.5, duration=3)
    range_check(full, part, mix, int(1.5 * RATE), 3 * RATE)


def test_offset_past_the_end_and_bad_ranges_are_one_line(tmp_path, model_file, capsys):
    sf.write(tmp_path / "song.wav", noise(1), RATE)
    assert separate(tmp_path / "song.wav", "-o", tmp_path / "out", "--model", model_file, "--offset", "5") == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"asteroid-unet: error: {tmp_path / 'song.wav'}: offset 5 s is past the end of the song (1.0 s)"]
    for flag, value, says in (("--offset", "-1", "--offset must be 0 or more seconds, got -1"),
                              ("--duration", "0", "--duration must be positive, got 0"),
                              ("--chunk-seconds", "0", "--chunk-seconds must be positive, got 0"),
                              ("--chunk-seconds", "-3", "--chunk-seconds must be positive, got -3"),
                              ("--mp3-bitrate", "1000", "--mp3-bitrate must be from 8 to 320 kbit/s, got 1000")):
        assert separate(tmp_path / "song.wav", "-o", tmp_path / "out", "--model", model_file, flag, value) == 2
        assert capsys.readouterr().err.strip().splitlines() == [f"asteroid-unet: error: {says}"]


def test_progress_off_a_terminal_is_one_line_per_file(tmp_path, model_file, capsys):
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, noise(2), RATE)
    assert separate(tmp_path / "a.wav", tmp_path / "b.wav", "-o", tmp_path / "out", "--model", model_file) == 0
    out, err = capsys.readouterr()  # neither is a terminal here
    lines = [line for line in out.splitlines() if "real time" in line]
    assert len(lines) == 2
    for line, name in zip(lines, ("a.wav", "b.wav")):
        pattern = rf"{re.escape(str(tmp_path / name))}: 2\.0 s of audio in (\d+\.\d) s \((\d+\.\d)x real time\)"
        assert re.fullmatch(pattern, line), line
    assert err == ""  # no bar off a terminal


def test_progress_bar_on_a_terminal_moves_every_chunk_with_an_eta(tmp_path, model_file, small_model):
    """On a pseudo-terminal that reports 0 columns (as a bare ``script`` or CI's pty does), the bar is drawn
    at 80 columns, once per chunk at least."""
    sf.write(tmp_path / "song.wav", noise(8), RATE)
    chunks = len(separator_for(small_model, RATE, chunk_seconds=1).plan(8 * RATE))
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.Popen([sys.executable, "-m", "asteroid_unet", "separate", str(tmp_path / "song.wav"), "-o",
                             str(tmp_path / "out"), "--model", model_file, "--chunk-seconds", "1"],
                            stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        seen += data
    assert proc.wait(timeout=300) == 0
    os.close(leader)
    states = re.findall(r"song\.wav: +(\d+)%\|[^|]*\| (\d+)/8 s \[[\d:]+<([\d:?]+)\]", seen.decode(errors="replace"))
    moved = {int(pct) for pct, _, _ in states}
    assert chunks >= 4 and len(moved) >= chunks + 1 and {0, 100} <= moved, (chunks, states)  # 0 %, then every chunk
    assert any(re.fullmatch(r"\d\d:\d\d", eta) for _, _, eta in states[1:-1])  # an ETA once the first chunk is done
