import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

from asteroid_unet import UNet, hub, provenance
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
    folder = hub.export(model_path, tmp_path / "hub", "someone/unet-test", SUMMARY, config, eval_set="musdb18 test")
    return small_model, folder


def test_export_layout_and_model_card(exported):
    _, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == [
        "NOTES.md", "README.md", "app.py", "asteroid_unet-0.1.0-py3-none-any.whl", "hyperparams.yaml", "packages.txt",
        "pytorch_model.bin", "requirements.txt", "results.json", "training_config.yaml"]
    assert "!new:asteroid_unet.UNet" in (folder / "hyperparams.yaml").read_text()  # the SpeechBrain interface
    card = (folder / "README.md").read_text()
    data = ModelCard.load(folder / "README.md").data
    assert data.library_name == "asteroid"
    assert {"asteroid", "audio", "audio-to-audio", "source-separation"} <= set(data.tags)
    # weights of unrecorded origin are research use only, and say so
    assert data.license == "other" and data.license_name == "research-use-only" and data.base_model is None
    assert "origin of these weights was not recorded" in card
    assert [(r.dataset_name, r.metric_name, r.metric_value) for r in data.eval_results] == [
        ("musdb18 test", "vocals SDR (museval, median)", 3.5), ("musdb18 test", "accompaniment SDR (museval, median)", 9.5)]
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
    with pytest.raises(ValueError, match="missing.pth: no such file"):
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
    assert front["sdk_version"] == hub.GRADIO_VERSION
    assert front["library_name"] == "asteroid"  # still a model card
    assert (folder / "app.py").read_text() == Path(asteroid_unet.app.__file__).read_text()
    # the Space installs this package from the wheel it carries, with the page's extra
    assert (folder / "requirements.txt").read_text() == "./asteroid_unet-0.1.0-py3-none-any.whl[app]\n"
    with zipfile.ZipFile(folder / "asteroid_unet-0.1.0-py3-none-any.whl") as wheel:
        names = wheel.namelist()
        metadata = wheel.read("asteroid_unet-0.1.0.dist-info/METADATA").decode()
    assert "asteroid_unet/app.py" in names and "asteroid_unet/weights/provenance.json" in names
    assert "Provides-Extra: app" in metadata and "gradio==" in metadata
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
    hub.main(["export", "--model", str(model_path), "--out", str(tmp_path / "o"), "--repo-id", "a/b", "--results",
              str(results), "--eval-set", "tiny test"])
    assert "| UNet | 3.50" in (tmp_path / "o" / "README.md").read_text()
    record = UNet.from_pretrained(str(tmp_path / "o")).provenance  # the scores are in the exported weights
    assert record["evaluation"][0]["set"] == "tiny test" and record["evaluation"][0]["tracks"] == 2
    assert record["evaluation"][0]["metrics"]["vocals"]["SDR"] == 3.5
    with pytest.raises(SystemExit) as exit_info:
        hub.main(["export", "--model", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "o"), "--repo-id", "a/b"])
    assert exit_info.value.code == 1


def test_export_needs_no_page_extra(tmp_path, small_model):
    """The recipes export from the [train] or [speechbrain] extras alone, without Gradio and its server."""
    torch.save(small_model.serialize(), tmp_path / "m.pth")
    code = ("import sys; sys.modules.update(dict.fromkeys(['gradio', 'starlette', 'fastapi', 'uvicorn'])); "
            "from asteroid_unet import hub; hub.main(sys.argv[1:])")
    out = subprocess.run([sys.executable, "-c", code, "export", "--model", str(tmp_path / "m.pth"), "--out",
                          str(tmp_path / "o"), "--repo-id", "a/b", "--requirement", "asteroid-unet[app]"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "o" / "app.py").read_text() == (Path(hub.__file__).parent / "app.py").read_text()
    assert yaml.safe_load((tmp_path / "o" / "README.md").read_text().split("---")[1])["sdk_version"] == "6.31.0"


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


def test_packaged_paper_export_states_research_use_and_its_data(tmp_path):
    folder = hub.export("paper", tmp_path / "hub", "someone/unet-paper", requirement="asteroid-unet[app]")
    card = ModelCard.load(folder / "README.md")
    assert card.data.license == "other" and card.data.license_name == "research-use-only"
    assert card.data.base_model is None  # trained from scratch
    assert card.data.datasets == ["mir-1k", "musdb18", "wesnoth-1.16-music"]
    assert ("MUSDB18-7 test previews", "vocals SDR (museval, median)", 5.2) in [
        (r.dataset_name, r.metric_name, r.metric_value) for r in card.data.eval_results]
    # model_card.md (the package's own card for these weights) says the same licence
    own = ModelCard.load(Path(hub.__file__).parents[1] / "model_card.md").data
    assert (own.license, own.license_name) == (card.data.license, card.data.license_name)
    assert "MIR-1K" in card.text and "research use only" in card.text and "MIT" not in card.data.to_yaml()
    assert "trained with the asteroid-unet Asteroid recipe" not in card.text


def test_packaged_spleeter_export_is_mit_with_deezer_as_origin(tmp_path):
    folder = hub.export("spleeter-2stems", tmp_path / "hub", "someone/spleeter", requirement="asteroid-unet[app]")
    card = ModelCard.load(folder / "README.md")
    assert card.data.license == "mit" and card.data.license_name is None
    assert card.data.base_model is None and card.data.datasets is None  # converted, not trained further here
    assert ("MUSDB18-7 test previews", "vocals SDR (museval, median)", 7.97) in [
        (r.dataset_name, r.metric_name, r.metric_value) for r in card.data.eval_results]
    assert "Deezer" in card.text and "Not trained further by asteroid-unet" in card.text
    record = UNet.from_pretrained(str(folder)).provenance
    assert record["base"]["licence"] == "mit" and len(record["base"]["sha256"]) == 64


def test_a_fine_tune_on_musdb18_is_research_only_and_a_looser_licence_is_refused(tmp_path, small_model):
    base = {"name": "spleeter-2stems", "licence": "mit", "source": "Deezer"}
    small_model.provenance = provenance.with_training(
        provenance.record(base), "egs/musdb18", [provenance.dataset("musdb18", 79, 0.153)], steps=100)
    torch.save(small_model.serialize(), tmp_path / "tuned.pth")
    folder = hub.export(tmp_path / "tuned.pth", tmp_path / "hub", "me/tuned", requirement="asteroid-unet[app]")
    card = ModelCard.load(folder / "README.md")
    assert (card.data.license, card.data.base_model, card.data.datasets) == ("other", "spleeter-2stems", ["musdb18"])
    assert "musdb18 (79 tracks, 0.15 h" in card.text and "non-commercial research use only" in card.text
    for looser in ("mit", "cc-by-nc-sa-4.0"):
        with pytest.raises(provenance.LicenceError, match=f"licence {looser} is looser than the weights allow: "
                                                          "training run 1 on musdb18"):
            hub.export(tmp_path / "tuned.pth", tmp_path / "refused", "me/tuned", license=looser)
        assert not (tmp_path / "refused").exists()  # nothing written
    out = subprocess.run([sys.executable, "-m", "asteroid_unet.hub", "export", "--model", str(tmp_path / "tuned.pth"),
                          "--out", str(tmp_path / "o"), "--repo-id", "me/tuned", "--license", "mit"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1 and "looser" in out.stderr
    assert "Traceback" not in out.stderr
    # as strict as the data, or stricter, is accepted
    folder = hub.export(tmp_path / "tuned.pth", tmp_path / "same", "me/tuned", license="other",
                        requirement="asteroid-unet[app]")
    assert ModelCard.load(folder / "README.md").data.license == "other"


def test_space_wheel_is_packed_from_an_installed_package(tmp_path):
    """Without a checkout (a plain pip install), the Space's wheel is packed from the installed files."""
    built = hub.package_wheel(tmp_path / "built")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(built)], check=True, timeout=300)
    code = ("import sys; from asteroid_unet import hub; "
            "assert not (hub.SOURCE_ROOT / 'pyproject.toml').exists(), hub.SOURCE_ROOT; "
            "print(hub.package_wheel(sys.argv[1]))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "packed")], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    packed = Path(out.stdout.strip())
    with zipfile.ZipFile(built) as a, zipfile.ZipFile(packed) as b:
        original, repacked = set(a.namelist()), set(b.namelist())
        assert repacked == original  # every file, the dist-info included
        assert all(a.read(n) == b.read(n) for n in original if not n.endswith("RECORD"))
    reinstalled = tmp_path / "again"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(reinstalled), str(packed)], check=True, timeout=300)
    assert (reinstalled / "asteroid_unet" / "weights" / "provenance.json").is_file()


def test_space_wheel_of_a_checkout_is_built_once_per_state_of_its_files(tmp_path, monkeypatch):
    """Exports after the first reuse the wheel kept in the user cache; a changed source file makes a new one."""
    source = tmp_path / "checkout"
    source.mkdir()
    for name in hub.WHEEL_SOURCES:  # what the build reads
        if (hub.SOURCE_ROOT / name).is_dir():
            shutil.copytree(hub.SOURCE_ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "spleeter_2stems*.pth"))
        else:
            shutil.copy2(hub.SOURCE_ROOT / name, source / name)
    monkeypatch.setattr(hub, "SOURCE_ROOT", source)
    monkeypatch.setenv("ASTEROID_UNET_CACHE", str(tmp_path / "cache"))
    builds = []
    real_run = subprocess.run
    monkeypatch.setattr(hub.subprocess, "run", lambda cmd, **kw: builds.append(cmd) or real_run(cmd, **kw))
    first = hub.package_wheel(tmp_path / "a")
    hub._built_wheel.cache_clear()  # as a new process
    second = hub.package_wheel(tmp_path / "b")
    assert len(builds) == 1 and first.read_bytes() == second.read_bytes()
    assert [p.parent.parent.name for p in (tmp_path / "cache").rglob("*.whl")] == ["space-wheels"]  # nothing half-built
    (source / "asteroid_unet" / "added.py").write_text("VALUE = 1\n")
    hub._built_wheel.cache_clear()
    third = hub.package_wheel(tmp_path / "c")
    assert len(builds) == 2 and "asteroid_unet/added.py" in zipfile.ZipFile(third).namelist()
    assert "asteroid_unet/added.py" not in zipfile.ZipFile(first).namelist()
    assert len(list((tmp_path / "cache").rglob("*.whl"))) == 1  # the older state's wheel went
    hub._built_wheel.cache_clear()
