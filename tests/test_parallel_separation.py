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


@pytest.mark.slow
def test_ray_data_writes_the_bytes_of_the_cli_and_keeps_failures_per_file(tmp_path, capsys):
    """Two CPU actors on a local Ray instance: the CLI's stems, byte for byte; the empty file fails alone."""
    ray = pytest.importorskip("ray")
    from asteroid_unet.ray_separate import separate_with_ray

    files = write_catalogue(tmp_path / "in")
    assert main(["separate", *map(str, files), "-o", str(tmp_path / "cli")]) == 1
    capsys.readouterr()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        results = separate_with_ray(files, tmp_path / "ray", actors=2)
    finally:
        ray.shutdown()
    assert [r["path"] for r in results] == [str(p) for p in files]
    assert [r["error"] for r in results] == [None, None, "empty file (0 bytes)", None]  # a, b, broken, c
    assert results[0]["stems"] == {"vocals": str(tmp_path / "ray" / "a" / "vocals.wav"),
                                   "accompaniment": str(tmp_path / "ray" / "a" / "accompaniment.wav")}
    cli, by_ray = stem_bytes(tmp_path / "cli"), stem_bytes(tmp_path / "ray")
    assert len(cli) == 6 and by_ray == cli


def test_ray_command_reports_a_bad_model_in_one_line(tmp_path, capsys):
    from asteroid_unet.ray_separate import main as ray_main

    assert ray_main([str(tmp_path), "--model", str(tmp_path / "missing.pth")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"asteroid-unet: error: {tmp_path / 'missing.pth'}: no such file, folder or Hub repo id"
