import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from asteroid_unet import UNet, hub
from helpers import load_from_offline_hub

SUMMARY = {
    "MIX": {"vocals": {"SDR": -4.0, "SIR": -3.0, "SAR": 20.0}, "accompaniment": {"SDR": 4.0, "SIR": 3.0, "SAR": 20.0}, "time_s": 1.0, "n_tracks": 2},
    "IRM": {"vocals": {"SDR": 9.0, "SIR": 18.0, "SAR": 10.0}, "accompaniment": {"SDR": 15.0, "SIR": 20.0, "SAR": 16.0}, "time_s": 2.0, "n_tracks": 2},
    "UNet": {"vocals": {"SDR": 3.5, "SIR": 8.0, "SAR": 5.0}, "accompaniment": {"SDR": 9.5, "SIR": 12.0, "SAR": 11.0}, "time_s": 3.0, "n_tracks": 2},
}


@pytest.fixture
def exported(tmp_path, small_model):
    model_path = tmp_path / "best_model.pth"
    torch.save(small_model.serialize(), model_path)
    config = tmp_path / "conf.yaml"
    config.write_text("data:\n  batch_size: 4\n")
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "NOTES.md").write_text("kept\n")  # files already there are kept
    folder = hub.export(model_path, tmp_path / "hub", "someone/unet-test", SUMMARY, config, dataset="musdb18")
    return small_model, folder


def test_export_layout_and_model_card(exported):
    _, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == [
        "NOTES.md", "README.md", "app.py", "hyperparams.yaml", "packages.txt", "pytorch_model.bin", "requirements.txt",
        "results.json", "training_config.yaml"]
    assert "!new:asteroid_unet.UNet" in (folder / "hyperparams.yaml").read_text()  # the SpeechBrain interface
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "asteroid"
    assert {"asteroid", "audio", "audio-to-audio", "source-separation"} <= set(front["tags"])
    assert front["datasets"] == ["musdb18"] and front["license"] == "cc-by-nc-sa-4.0"
    assert "| MIX | -4.00" in card and "| IRM | 9.00" in card and "| UNet | 3.50" in card
    assert 'from_pretrained("someone/unet-test")' in card
    assert json.loads((folder / "results.json").read_text())["UNet"]["vocals"]["SDR"] == 3.5
    assert yaml.safe_load((folder / "training_config.yaml").read_text()) == {"data": {"batch_size": 4}}


def test_exported_folder_loads_locally_and_from_offline_hub_cache(exported, tmp_path):
    model, folder = exported
    x = torch.randn(1, 12000)
    loaded = UNet.from_pretrained(str(folder / "pytorch_model.bin")).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    printed = load_from_offline_hub(tmp_path / "cache", "someone/unet-test", folder / "pytorch_model.bin",
                                    "masknet_args['first_channels']")
    assert printed == ["UNet", "4"]


def test_export_rejects_bad_input(tmp_path, small_model):
    with pytest.raises(ValueError, match="no such model file"):
        hub.export(tmp_path / "missing.pth", tmp_path / "out", "a/b")
    other = tmp_path / "other.pth"
    torch.save({"model_name": "ConvTasNet", "state_dict": {}}, other)
    with pytest.raises(ValueError, match="not an Asteroid model package"):
        hub.export(other, tmp_path / "out", "a/b")
    good = tmp_path / "good.pth"
    torch.save(small_model.serialize(), good)
    with pytest.raises(ValueError, match="org/name"):
        hub.export(good, tmp_path / "out", "noslash")


def test_export_writes_a_space_that_serves_its_own_weights(exported):
    import subprocess
    import sys

    import asteroid_unet.app

    _, folder = exported
    front = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert front["sdk_version"] == asteroid_unet.app.GRADIO_VERSION
    assert front["library_name"] == "asteroid"  # still a model card
    assert (folder / "app.py").read_text() == Path(asteroid_unet.app.__file__).read_text()
    assert (folder / "requirements.txt").read_text() == "asteroid-unet[app]==0.1.0\n"
    assert (folder / "packages.txt").read_text() == "ffmpeg\n"
    # As a Space runs it (python app.py, in the folder), its default model is the folder's own weights.
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=folder, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COLUMNS": "400"})
    assert out.returncode == 0, out.stderr
    assert f"(default: {folder / 'pytorch_model.bin'})" in " ".join(out.stdout.split())


def test_upload_calls_hub_with_the_folder(exported, monkeypatch):
    import huggingface_hub

    calls = {}
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo_id, **kw: calls.setdefault("create", (repo_id, kw)))
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kw: calls.setdefault("upload", kw) and "https://hf.co/commit/1")
    _, folder = exported
    assert hub.upload_folder(folder, "someone/unet-test", token="t0k", private=True) == "https://hf.co/commit/1"
    assert calls["create"] == ("someone/unet-test", {"token": "t0k", "private": True, "repo_type": "model", "exist_ok": True})
    assert calls["upload"]["folder_path"] == str(folder) and calls["upload"]["repo_id"] == "someone/unet-test"
    assert calls["upload"]["token"] == "t0k"


def test_upload_refuses_a_folder_without_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin"):
        hub.upload_folder(tmp_path, "someone/x")


def test_cli_export(tmp_path, small_model):
    model_path = tmp_path / "m.pth"
    torch.save(small_model.serialize(), model_path)
    results = tmp_path / "summary.json"
    results.write_text(json.dumps(SUMMARY))
    hub.main(["export", "--model", str(model_path), "--out", str(tmp_path / "o"), "--repo-id", "a/b", "--results", str(results)])
    assert "| UNet | 3.50" in (tmp_path / "o" / "README.md").read_text()
    with pytest.raises(SystemExit) as exit_info:
        hub.main(["export", "--model", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "o"), "--repo-id", "a/b"])
    assert exit_info.value.code == 1


def test_upload_as_space(exported, monkeypatch):
    import huggingface_hub

    calls = {}
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo_id, **kw: calls.setdefault("create", kw))
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kw: calls.setdefault("upload", kw) and "url")
    _, folder = exported
    hub.upload_folder(folder, "someone/unet-demo", token="t0k", space=True)
    assert calls["create"]["repo_type"] == "space" and calls["create"]["space_sdk"] == "gradio"
    assert calls["upload"]["repo_type"] == "space"
    (folder / "app.py").unlink()
    with pytest.raises(FileNotFoundError, match="app.py"):
        hub.upload_folder(folder, "someone/unet-demo", space=True)
