"""Per-model separator defaults (``UNet(separation=...)``): saved with the model, used by every
entry point unless the caller overrides them."""
import numpy as np
import pytest
import soundfile as sf
import torch

from asteroid_unet import UNet, precision
from asteroid_unet.cli import main
from asteroid_unet.model import load_model
from asteroid_unet.precision import machine_precision
from asteroid_unet.separate import separate
from asteroid_unet.separator import DEFAULT_SETTINGS, model_settings, separator_for


def tiny(separation=None):
    torch.manual_seed(0)
    return UNet(n_layers=4, first_channels=4, patch_frames=32, patch_hop=16, n_bins=128, separation=separation).eval()


def test_settings_are_saved_with_the_model(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(tiny({"wiener_iterations": 0, "tta": 1}).serialize(), path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["model_args"]["separation"] == {"wiener_iterations": 0, "tta": True}
    assert UNet.from_pretrained(str(path)).separation == {"wiener_iterations": 0, "tta": True}


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="chunk_seconds"):
        tiny({"chunk_seconds": 10})
    with pytest.raises(ValueError, match="precision must be one of auto, float32"):
        tiny({"precision": "bfloat16"})  # a model may keep float32, not ask for less


def test_a_model_that_keeps_float32_runs_in_float32_where_auto_would_reduce_it(monkeypatch):
    monkeypatch.setattr(precision, "native_bfloat16_cpu", lambda: True)
    assert separator_for(tiny(), 22050).precision == "bfloat16"
    kept = tiny({"precision": "float32"})
    assert separator_for(kept, 22050).precision == "float32"
    assert separator_for(kept, 22050, precision="bfloat16").precision == "bfloat16"  # asked for, it wins


def test_the_separator_takes_the_models_settings_unless_overridden():
    own = tiny({"wiener_iterations": 0, "full_band": False})
    assert model_settings(own) == {**DEFAULT_SETTINGS, "wiener_iterations": 0, "full_band": False}
    separator = separator_for(own, 22050)
    assert (separator.wiener_iterations, separator.full_band) == (0, False)
    overridden = separator_for(own, 22050, wiener_iterations=2, full_band=True)
    assert (overridden.wiener_iterations, overridden.full_band) == (2, True)
    plain = separator_for(tiny(), 22050)  # a model without settings of its own: the package's
    assert {key: getattr(plain, key) for key in DEFAULT_SETTINGS} == {**DEFAULT_SETTINGS,
                                                                      "precision": machine_precision("cpu")}


def test_packaged_models_carry_the_settings_chosen_on_validation():
    assert load_model("paper").separation == {"wiener_iterations": 0, "tta": False, "full_band": True}
    assert load_model("spleeter-2stems").separation == {"wiener_iterations": 1, "tta": False, "full_band": True}


def test_api_and_command_line_use_the_models_settings(tmp_path):
    """A model saved with ``wiener_iterations=0``: the API and ``asteroid-unet separate`` without
    ``--wiener`` give its ratio-mask stems, and ``--wiener 1`` still turns the filter on."""
    model = tiny({"wiener_iterations": 0})
    path = tmp_path / "model.pth"
    torch.save(model.serialize(), path)
    song = torch.randn(2, 3 * 22050, generator=torch.Generator().manual_seed(0)) * 0.1
    sf.write(tmp_path / "song.wav", song.numpy().T, 22050, subtype="FLOAT")
    api = separate(song, 22050, model)
    assert torch.equal(api["vocals"], separate(song, 22050, model, wiener_iterations=0)["vocals"])
    assert not torch.allclose(api["vocals"], separate(song, 22050, model, wiener_iterations=1)["vocals"])
    stems = {}
    for label, flags in (("own", []), ("wiener0", ["--wiener", "0"]), ("wiener1", ["--wiener", "1"])):
        args = ["separate", str(tmp_path / "song.wav"), "-o", str(tmp_path / label), "--model", str(path), *flags]
        assert main(args) == 0
        stems[label] = sf.read(tmp_path / label / "song" / "vocals.wav")[0]
    assert np.array_equal(stems["own"], stems["wiener0"]) and not np.allclose(stems["own"], stems["wiener1"])
