"""The SpeechBrain interface: one Asteroid hub folder (one pytorch_model.bin) loads with from_hparams."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from asteroid_unet.separate import separate
from asteroid_unet.speechbrain import UNetSeparator, write_speechbrain_files

PREVIEW = Path("/work/shared/data/musdb-preview")
REPO_ID = "someone/unet-speechbrain"


@pytest.fixture
def hub_folder(tmp_path, small_model):
    folder = tmp_path / "hub"
    folder.mkdir()
    torch.save(small_model.serialize(), folder / "pytorch_model.bin")
    write_speechbrain_files(folder)
    return folder


def populate_hf_cache(cache, repo_id, files):
    """Lay out files the way ``hf_hub_download`` caches them: refs/main -> snapshots/<commit>/."""
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    for f in files:
        shutil.copy(f, repo / "snapshots" / commit / f.name)


def test_hyperparams_has_pretrainer_and_the_package_settings(hub_folder, small_model):
    text = (hub_folder / "hyperparams.yaml").read_text()
    assert "pretrainer: !new:asteroid_unet.speechbrain.AsteroidPretrainer" in text
    assert "model: !new:asteroid_unet.UNet" in text and "n_layers: 4" in text and "n_bins: 128" in text
    assert sorted(p.name for p in hub_folder.iterdir()) == ["hyperparams.yaml", "pytorch_model.bin"]


def test_from_local_folder_matches_the_asteroid_model(hub_folder, small_model, tmp_path):
    sep = UNetSeparator.from_hparams(source=str(hub_folder), savedir=str(tmp_path / "sb"), run_opts={"device": "cpu"})
    assert sep.targets == ["vocals", "accompaniment"] and sep.sample_rate == 8192
    x = torch.randn(2, 9001)
    est = sep.separate_batch(x)
    assert est.shape == (2, 9001, 2)
    torch.testing.assert_close(est, small_model.forward_wav(x).transpose(1, 2), rtol=0, atol=0)


def test_from_offline_hf_cache_in_a_fresh_process(hub_folder, tmp_path, small_model):
    """Only the standard HF cache and HF_HUB_OFFLINE=1: no network, no local folder."""
    cache = tmp_path / "hf" / "hub"
    populate_hf_cache(cache, REPO_ID, [hub_folder / "pytorch_model.bin", hub_folder / "hyperparams.yaml"])
    x = torch.randn(1, 7000)
    torch.save(x, tmp_path / "x.pt")
    code = (
        "import sys, torch; from asteroid_unet.speechbrain import UNetSeparator\n"
        f"sep = UNetSeparator.from_hparams(source={REPO_ID!r}, savedir=sys.argv[1], run_opts={{'device': 'cpu'}})\n"
        "torch.save(sep.separate_batch(torch.load(sys.argv[2])), sys.argv[3])\n"
    )
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    args = [str(tmp_path / "sb"), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")]
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    torch.testing.assert_close(torch.load(tmp_path / "y.pt"), small_model.forward_wav(x).transpose(1, 2))


def test_settings_that_disagree_with_the_weights_are_refused(hub_folder, tmp_path):
    yaml_file = hub_folder / "hyperparams.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("first_channels: 4", "first_channels: 8"))
    with pytest.raises(ValueError, match="first_channels"):
        UNetSeparator.from_hparams(source=str(hub_folder), savedir=str(tmp_path / "sb"))


def test_a_file_that_is_not_a_package_is_refused(hub_folder, tmp_path):
    torch.save({"weights": torch.zeros(3)}, hub_folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="not an Asteroid model package"):
        UNetSeparator.from_hparams(source=str(hub_folder), savedir=str(tmp_path / "sb"))


def test_write_needs_the_asteroid_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin"):
        write_speechbrain_files(tmp_path)


def test_bad_inputs_give_clear_errors(hub_folder, tmp_path):
    sep = UNetSeparator.from_hparams(source=str(hub_folder), savedir=str(tmp_path / "sb"))
    with pytest.raises(ValueError, match=r"\(batch, time\)"):
        sep.separate_batch(torch.zeros(1, 2, 100))
    with pytest.raises(FileNotFoundError, match="No such audio file"):
        sep.separate_file(tmp_path / "missing.wav")


def test_command_line_writes_the_yaml(tmp_path, small_model):
    torch.save(small_model.serialize(), tmp_path / "pytorch_model.bin")
    out = subprocess.run([sys.executable, "-m", "asteroid_unet.speechbrain", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "hyperparams.yaml").is_file()


@pytest.mark.skipif(not PREVIEW.is_dir(), reason="needs ../shared/data/musdb-preview")
def test_separate_file_on_a_real_musdb_preview(hub_folder, tmp_path, small_model):
    """Falcon 69 (stem mp4): the mixture stream, decoded by musdb, then separated from a wav file."""
    musdb = pytest.importorskip("musdb")  # needs ffmpeg
    track = musdb.DB(root=str(PREVIEW), subsets=["test"]).tracks[0]
    mix, rate = track.audio, int(track.rate)  # (time, 2) at 44.1 kHz
    path = tmp_path / "falcon 69.wav"
    sf.write(path, mix, rate)
    sep = UNetSeparator.from_hparams(source=str(hub_folder), savedir=str(tmp_path / "sb"))
    est = sep.separate_file(path)
    assert rate == 44100 and mix.shape[1] == 2 and mix.shape[0] > 5 * rate
    assert est.shape == (2, mix.shape[0], 2)  # full band at the file's own rate
    expected = separate(torch.from_numpy(sf.read(path, dtype="float32")[0].T), rate, small_model)
    torch.testing.assert_close(est, torch.stack([expected["vocals"], expected["accompaniment"]], -1))


def test_folder_exported_by_the_asteroid_hub_serves_both_toolkits(tmp_path, small_model):
    from asteroid_unet import UNet, hub

    torch.save(small_model.serialize(), tmp_path / "best_model.pth")
    folder = hub.export(tmp_path / "best_model.pth", tmp_path / "hub", repo_id=REPO_ID)  # writes hyperparams.yaml
    sep = UNetSeparator.from_hparams(source=str(folder), savedir=str(tmp_path / "sb"))
    asteroid_model = UNet.from_pretrained(str(folder / "pytorch_model.bin"))
    x = torch.randn(1, 5000)
    torch.testing.assert_close(sep.separate_batch(x), asteroid_model.separate(x).transpose(1, 2), rtol=0, atol=0)
