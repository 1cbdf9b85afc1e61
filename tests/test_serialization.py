import subprocess
import sys

import pytest
import torch
from asteroid import models as asteroid_models
from asteroid.models import BaseModel

from asteroid_unet import UNet
from helpers import load_from_offline_hub, populate_hf_cache


def _plain(value):
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return type(value) in (str, int, float, bool, type(None), torch.Tensor)


@pytest.fixture
def saved(tmp_path, small_model):
    path = tmp_path / "model.pth"
    torch.save(small_model.serialize(), path)
    return small_model, path


def test_registered_with_asteroid():
    assert asteroid_models.get("UNet") is UNet
    assert asteroid_models.get("unet") is UNet


def test_serialize_holds_plain_types_only(small_model):
    conf = small_model.serialize()
    assert _plain(conf)
    assert conf["model_name"] == "UNet"


def test_serialize_and_load_need_neither_pytorch_lightning_nor_pkg_resources(tmp_path):
    """Where setuptools has no ``pkg_resources`` (81 and later), Asteroid's own ``serialize`` fails
    through pytorch-lightning's torchmetrics; ours imports neither, and keeps Asteroid's keys."""
    code = """
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pkg_resources", "pytorch_lightning", "lightning", "torchmetrics"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Absent())
import torch, asteroid_unet
model = asteroid_unet.UNet(n_layers=4, first_channels=4, patch_frames=32, patch_hop=16, n_bins=128)
conf = model.serialize()
torch.save(conf, sys.argv[1])
asteroid_unet.load_model(sys.argv[1])
print(sorted(conf), sorted(conf["infos"]["software_versions"].items()))
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.pth")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    import asteroid
    import importlib.metadata
    versions = [("asteroid_version", asteroid.__version__),
                ("pytorch_lightning_version", importlib.metadata.version("pytorch-lightning")),
                ("torch_version", str(torch.__version__))]
    assert out.stdout.strip() == f"{['infos', 'model_args', 'model_name', 'state_dict']} {versions}"


def test_round_trip_identical_in_eval_mode(saved):
    model, path = saved
    loaded = UNet.from_pretrained(str(path)).eval()
    x = torch.randn(1, 2, 20000)
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=0)


def test_round_trip_in_train_mode_with_seeded_dropout(saved):
    """Asteroid's own model tests compare without .eval(): dropout must not break a round trip."""
    model, path = saved
    loaded = BaseModel.from_pretrained(str(path))
    model.train(), loaded.train()
    x = torch.randn(1, 20000)
    outs = []
    for m in (model, loaded):
        torch.manual_seed(3)
        outs.append(m(x))
    torch.testing.assert_close(*outs)


def test_loads_with_weights_only(saved):
    _, path = saved
    conf = torch.load(path, weights_only=True)
    assert conf["model_args"]["n_layers"] == 4


def test_non_default_settings_survive(tmp_path):
    model = UNet(n_layers=5, sample_rate=16000, targets=("vocals",), patch_hop=128)
    path = tmp_path / "m.pth"
    torch.save(model.serialize(), path)
    loaded = BaseModel.from_pretrained(str(path))
    assert isinstance(loaded, UNet)
    assert loaded.sample_rate == 16000
    assert len(loaded.masker.encoder) == 5
    assert loaded.targets == ["vocals"] and loaded.patch_hop == 128


@pytest.mark.parametrize("suffix", ["", "@main", "@v1"])
def test_from_pretrained_repo_id_offline(tmp_path, saved, suffix, monkeypatch):
    model, path = saved
    cache = tmp_path / "asteroid_cache"
    populate_hf_cache(cache, "someone/unet-test", path, revision=suffix[1:] or "main")
    monkeypatch.setattr("asteroid.utils.hub_utils.CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    loaded = UNet.from_pretrained("someone/unet-test" + suffix).eval()
    x = torch.randn(1, 9000)
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded(x))


def test_from_pretrained_repo_id_offline_subprocess(tmp_path, saved):
    """The documented environment variables alone (ASTEROID_CACHE, HF_HUB_OFFLINE) are enough."""
    _, path = saved
    assert load_from_offline_hub(tmp_path / "cache", "someone/unet-test", path, "n_fft") == ["UNet", "1024"]


@pytest.mark.parametrize("kind", ["tensor", "numpy", "file"])
def test_asteroid_separate(tmp_path, small_model, kind):
    import soundfile as sf

    x = torch.randn(1, 1, 9000) * 0.1
    if kind == "tensor":
        out = small_model.separate(x)
        assert out.shape == (1, 2, 9000)
    elif kind == "numpy":
        out = small_model.separate(x.numpy())
        assert out.shape == (1, 2, 9000)
    else:
        wav = tmp_path / "mix.wav"
        sf.write(wav, x[0, 0].numpy(), int(small_model.sample_rate))
        small_model.separate(str(wav), output_dir=str(tmp_path))
        for i in (1, 2):
            data, sr = sf.read(tmp_path / f"mix_est{i}.wav")
            assert sr == small_model.sample_rate and data.shape == (9000,)


def test_asteroid_infer_finds_unet_without_importing_asteroid_unet(tmp_path, saved):
    """asteroid_unet_autoregister.pth registers UNet when asteroid.models is imported (installed by make)."""
    import subprocess
    import sys

    import soundfile as sf

    model, path = saved
    sf.write(tmp_path / "mix.wav", (torch.randn(12000) * 0.1).numpy(), int(model.sample_rate))
    infer = [sys.executable, "-c", "import sys; from asteroid.scripts.asteroid_cli import infer; infer(sys.argv[1:])"]
    out = subprocess.run(infer + [str(path), "--files", str(tmp_path / "mix.wav"), "-o", str(tmp_path), "-d", "cpu"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for i in (1, 2):
        data, rate = sf.read(tmp_path / f"mix_est{i}.wav")
        assert rate == model.sample_rate and data.shape == (12000,)
