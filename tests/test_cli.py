import subprocess
import sys

import soundfile as sf
import torch

from asteroid_unet.cli import main


def write_song(path, seconds=2, rate=22050, channels=2):
    sf.write(path, (torch.randn(int(seconds * rate), channels) * 0.1).numpy(), rate)


def tiny_model_file(tmp_path, small_model):
    path = tmp_path / "tiny.pth"
    torch.save(small_model.serialize(), path)
    return str(path)


def test_cli_separates_files_and_folders(tmp_path, small_model, capsys):
    (tmp_path / "in").mkdir()
    write_song(tmp_path / "in" / "one.wav")
    write_song(tmp_path / "in" / "two.flac", channels=1)
    code = main(["separate", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", tiny_model_file(tmp_path, small_model)])
    assert code == 0
    assert sf.info(tmp_path / "out" / "one" / "vocals.wav").channels == 2
    assert sf.info(tmp_path / "out" / "two" / "accompaniment.flac").channels == 1
    assert "vocals:" in capsys.readouterr().out


def test_cli_bad_file_is_one_line_and_others_still_run(tmp_path, small_model, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 10)
    good = tmp_path / "good.wav"
    write_song(good)
    code = main(["separate", str(bad), str(good), "-o", str(tmp_path / "out"), "--model", tiny_model_file(tmp_path, small_model)])
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "bad.wav" in errors[0] and "Traceback" not in err
    assert (tmp_path / "out" / "good" / "vocals.wav").exists()
    assert not (tmp_path / "out" / "bad").exists() or not any((tmp_path / "out" / "bad").iterdir())


def test_python_dash_m_entry_point(tmp_path, small_model):
    song = tmp_path / "s.wav"
    write_song(song, seconds=1)
    proc = subprocess.run(
        [sys.executable, "-m", "asteroid_unet", "separate", str(song), "-o", str(tmp_path / "o"),
         "--model", tiny_model_file(tmp_path, small_model), "--format", "flac"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "s" / "vocals.flac").exists()
