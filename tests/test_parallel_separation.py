"""Separating many files at once: ``--jobs`` worker processes, and the Ray Data path."""
import numpy as np
import pytest
import soundfile as sf

from asteroid_unet.cli import main


def write_catalogue(folder):
    """Three songs (stereo 44.1 kHz, mono 22.05 kHz, stereo 48 kHz) and an empty file, which must fail."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, rate, channels, seconds in (("a", 44100, 2, 3.0), ("b", 22050, 1, 2.0), ("c", 48000, 2, 1.5)):
        sf.write(folder / f"{name}.wav", 0.3 * rng.standard_normal((int(rate * seconds), channels)), rate)
    (folder / "broken.wav").write_bytes(b"")
    return sorted(folder.iterdir())


def stem_bytes(outdir):
    return {str(p.relative_to(outdir)): p.read_bytes() for p in sorted(outdir.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_jobs_write_the_bytes_of_one_process_and_keep_failures_per_file(tmp_path, capsys):
    files = [str(p) for p in write_catalogue(tmp_path / "in")]
    outputs = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        assert main(["separate", *files, "-o", str(out), "--jobs", str(jobs)]) == 1
        printed = capsys.readouterr()
        assert printed.err.count("asteroid-unet: error:") == 1
        assert f"error: {tmp_path / 'in' / 'broken.wav'}: empty file (0 bytes)" in printed.err
        assert printed.out.count("vocals: ") == 3
        outputs[jobs] = stem_bytes(out)
    assert sorted(outputs[1]) == [f"{s}/{stem}.wav" for s in "abc" for stem in ("accompaniment", "vocals")]
    assert outputs[1] == outputs[2]


def test_jobs_below_one_is_an_error(tmp_path, capsys):
    assert main(["separate", str(tmp_path / "x.wav"), "--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
