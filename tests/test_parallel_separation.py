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


def write_batch_catalogue(folder):
    """write_catalogue's songs and empty file, and an 11 s mono 16 kHz song with NaN at 9 s: it fails in
    its third 1.5 s chunk, after writing two, while the others go on."""
    files = write_catalogue(folder)
    samples = np.random.default_rng(1).standard_normal((11 * 16000, 1)).astype(np.float32)
    samples[9 * 16000] = np.nan
    sf.write(folder / "d.wav", 0.3 * samples, 16000, subtype="FLOAT")
    return files + [folder / "d.wav"]


def test_batched_files_write_the_bytes_of_one_file_at_a_time(tmp_path, small_model, capsys):
    """--batch-files 3 on the CPU: songs of different rates, channels and lengths share network passes
    and write the bytes of one file at a time; the empty file and the NaN song fail alone, each with
    one line, and leave no stem."""
    import torch

    model = tmp_path / "tiny.pth"
    torch.save(small_model.serialize(), model)
    files = [str(p) for p in write_batch_catalogue(tmp_path / "in")]
    outputs, errors = {}, {}
    for batch in (1, 3):
        out = tmp_path / f"batch{batch}"
        args = ["separate", *files, "-o", str(out), "--model", str(model), "--chunk-seconds", "1", "--batch-files", str(batch)]
        assert main(args) == 1
        printed = capsys.readouterr()
        errors[batch] = [line for line in printed.err.splitlines() if "error:" in line]
        assert printed.out.count("vocals: ") == 3
        outputs[batch] = stem_bytes(out)
    assert errors[3] == errors[1] == [f"asteroid-unet: error: {files[2]}: empty file (0 bytes)",
                                      f"asteroid-unet: error: {files[4]}: contains NaN or Inf samples"]
    assert sorted(outputs[1]) == [f"{s}/{stem}.wav" for s in "abc" for stem in ("accompaniment", "vocals")]
    assert outputs[3] == outputs[1]


def test_shared_passes_send_each_patch_through_the_network_once(tmp_path, small_model, monkeypatch):
    """Shared passes (a GPU's way, here on the CPU), in 1.5 s chunks: as many patches go through the
    network as in one whole pass of each song, in fewer calls than one file at a time; the stems
    agree with one file at a time to rounding."""
    from asteroid_unet import UNet
    from asteroid_unet.catalogue import separate_files
    from asteroid_unet.files import separate_files as separate_batched
    from asteroid_unet.separate import separate_file

    files = write_catalogue(tmp_path / "in")  # a, b, broken, c
    calls = []
    network_masks = UNet.network_masks  # every patch goes through it, with or without the Wiener filter
    monkeypatch.setattr(UNet, "network_masks", lambda self, p: calls.append(p.shape[0]) or network_masks(self, p))
    for path in files[:2] + files[3:]:
        separate_file(path, tmp_path / "whole", small_model, chunk_seconds=1000)
    whole, calls[:] = sum(calls), []
    float_stems = dict(sample_format="float32")  # compared to float rounding (16-bit stems round to 3e-5)
    alone = list(separate_files(files, tmp_path / "alone", small_model, chunk_seconds=1, **float_stems))
    alone_calls, calls[:] = len(calls), []
    shared = list(separate_batched(files, tmp_path / "shared", small_model, 3, chunk_seconds=1, shared_passes=True,
                                   **float_stems))
    assert [r["error"] for r in shared] == [r["error"] for r in alone] == [None, None, "empty file (0 bytes)", None]
    assert sum(calls) == whole > 0
    assert len(calls) < alone_calls
    for result, reference in zip(shared, alone):
        for name, path in (result["stems"] or {}).items():
            assert np.abs(sf.read(path)[0] - sf.read(reference["stems"][name])[0]).max() < 1e-5


def test_a_failed_shared_pass_fails_its_songs_only(tmp_path, small_model, monkeypatch):
    """When a shared network pass fails (out of GPU memory, say), the songs in it fail with its line and
    leave no stem; the songs after them are separated."""
    from asteroid_unet import UNet
    from asteroid_unet.files import separate_files as separate_batched

    files = write_catalogue(tmp_path / "in")  # a, b, broken, c
    network_masks = UNet.network_masks
    calls = []

    def failing_once(self, patches):
        calls.append(patches.shape[0])
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")
        return network_masks(self, patches)

    monkeypatch.setattr(UNet, "network_masks", failing_once)
    results = list(separate_batched(files, tmp_path / "out", small_model, 2, chunk_seconds=1, shared_passes=True))
    assert [r["error"] for r in results] == ["CUDA out of memory. Tried to allocate 2.00 GiB"] * 2 + [
        "empty file (0 bytes)", None]
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")) == [
        "c", "c/accompaniment.wav", "c/vocals.wav"]


def test_batch_files_below_one_or_with_jobs_is_an_error(tmp_path, capsys):
    assert main(["separate", str(tmp_path / "x.wav"), "--batch-files", "0"]) == 2
    assert "--batch-files must be at least 1" in capsys.readouterr().err
    assert main(["separate", str(tmp_path / "x.wav"), "--batch-files", "2", "--jobs", "2"]) == 2
    assert capsys.readouterr().err.strip() == "asteroid-unet: error: use --batch-files or --jobs, not both"


def test_an_interrupt_mid_batch_keeps_no_partial_stem(tmp_path, small_model, monkeypatch, capsys):
    """Ctrl-C while batched songs are half written: their stems and folders go, a finished song's stay."""
    import torch

    from asteroid_unet import audio

    model = tmp_path / "tiny.pth"
    torch.save(small_model.serialize(), model)
    files = [str(p) for p in write_catalogue(tmp_path / "in")]  # a and b take 2 chunks, c one
    real_write, calls = audio.AtomicWriter.write, []

    def write(self, block):
        calls.append(self.path)
        if len(calls) == 7:  # the second chunk of a: c is done
            raise KeyboardInterrupt
        real_write(self, block)

    monkeypatch.setattr(audio.AtomicWriter, "write", write)
    out = tmp_path / "out"
    assert main(["separate", *files, "-o", str(out), "--model", str(model), "--chunk-seconds", "1", "--batch-files", "3"]) == 130
    assert capsys.readouterr().err.strip() == "asteroid-unet: interrupted; no partial stem was kept"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["c", "c/accompaniment.wav", "c/vocals.wav"]


def test_gpu_passes_hold_256_paper_size_patches():
    from asteroid_unet import UNet
    from asteroid_unet.files import gpu_patches_per_pass
    from asteroid_unet.model import spleeter_args

    assert gpu_patches_per_pass(UNet()) == 256
    assert gpu_patches_per_pass(UNet(**spleeter_args())) == 16  # stereo, 1024 bins x 512 frames
    assert gpu_patches_per_pass(UNet(n_bins=128, patch_frames=32, patch_hop=16, patch_batch=8192, n_layers=4, first_channels=4)) == 8192
