"""Asteroid's own entry points on a UNet: deterministic, full band, stereo, no side effects."""
import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asteroid_unet import UNet, load_model
from asteroid_unet.separate import separate
from asteroid_unet.separator import Separator
from asteroid_unet.weights import CheckpointError, resolve

ROOT = Path(__file__).resolve().parents[1]
PAPER_WEIGHTS = ROOT / "asteroid_unet" / "weights" / "unet_default.pth"


def assert_save_load_round_trip(model, input_samples=801):
    """Asteroid's model save/load check: serialize, rebuild, same forward (in the model's mode),
    and rebuild with and without ``sample_rate`` in the arguments."""
    x = torch.randn(1, input_samples)
    conf = model.serialize()
    rebuilt = type(model).from_pretrained(conf)
    torch.testing.assert_close(model(x), rebuilt(x))
    rate = conf["model_args"].pop("sample_rate")
    type(model).from_pretrained(conf)
    assert type(model).from_pretrained(conf, sample_rate=rate).sample_rate == model.sample_rate


def test_asteroid_save_load_check_default_model_eval_mode():
    torch.manual_seed(0)
    assert_save_load_round_trip(UNet().eval())


def test_asteroid_save_load_check_train_mode_without_dropout():
    torch.manual_seed(0)
    model = UNet(dropout=0.0)
    assert model.training
    assert_save_load_round_trip(model)


def test_forward_is_deterministic_in_train_mode_and_keeps_the_mode(small_model):
    small_model.train()
    x = torch.randn(2, 9000)
    with torch.no_grad():
        a, b = small_model(x), small_model(x)
    assert torch.equal(a, b)
    assert small_model.training and all(m.training for m in small_model.modules())
    small_model.eval()
    with torch.no_grad():
        assert torch.equal(small_model(x), a)  # eval mode gives the same stems
    assert not small_model.training


def test_training_path_still_follows_the_mode(small_model):
    """Dropout and batch statistics stay on for the loss path (patch_masks) in train mode."""
    small_model.train()
    patches = torch.rand(4, 1, 128, 32)
    torch.manual_seed(1)
    a = small_model.patch_masks(patches)
    torch.manual_seed(2)
    b = small_model.patch_masks(patches)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("shape", [(9000,), (2, 9000), (2, 1, 9000), (1, 2, 9000)])
def test_model_separate_gives_the_separator_stems(small_model, shape):
    small_model.train()  # as Asteroid's from_pretrained leaves it
    x = torch.randn(*shape) * 0.1
    out = small_model.separate(x)
    items = x.reshape(-1, 1 if x.ndim < 3 else x.shape[1], x.shape[-1])
    expected = torch.stack([
        torch.stack(list(separate(item, 8192, small_model).values())) for item in items
    ])  # (batch, stems, channels, time)
    if x.ndim == 1:
        expected = expected[0, :, 0]
    elif x.ndim == 2 or x.shape[1] == 1:
        expected = expected[:, :, 0]
    else:  # multichannel: each stem (time, channels), as soundfile writes it
        expected = expected.transpose(-1, -2)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert small_model.training
    assert isinstance(small_model.separate(x.numpy()), np.ndarray)


def test_model_separate_stereo_file_full_band_at_its_rate(tmp_path, small_model):
    rate = 44100
    t = np.arange(2 * rate) / rate
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 9000 * t)], 1)
    sf.write(tmp_path / "song.wav", stereo.astype(np.float32), rate, subtype="FLOAT")
    small_model.separate(str(tmp_path / "song.wav"), output_dir=str(tmp_path / "out"))
    stems = [sf.read(tmp_path / "out" / f"song_est{i}.wav") for i in (1, 2)]
    for data, sr in stems:
        assert sr == rate and data.shape == stereo.shape
    np.testing.assert_allclose(stems[0][0] + stems[1][0], stereo, atol=1e-5)
    expected = separate(torch.from_numpy(stereo.T.astype(np.float32)), rate, small_model)
    np.testing.assert_allclose(stems[0][0], expected["vocals"].numpy().T, atol=1e-6)
    with pytest.warns(UserWarning, match="already exists"):
        small_model.separate(str(tmp_path / "song.wav"), output_dir=str(tmp_path / "out"))


def run_asteroid_infer(model_path, files, outdir, *options, fresh_process=False):
    """asteroid-infer's function, here or in a fresh process that never imports asteroid_unet itself."""
    from asteroid.scripts.asteroid_cli import infer

    argv = [str(model_path), "--files", *map(str, files), "-o", str(outdir), "-d", "cpu", *options]
    if not fresh_process:
        return infer(argv)
    code = "import sys; from asteroid.scripts.asteroid_cli import infer; infer(sys.argv[1:])"
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(not PAPER_WEIGHTS.is_file(), reason="the paper weights are not packaged")
def test_asteroid_infer_keeps_asteroids_behaviour_through_our_forward_wav(tmp_path):
    """asteroid-infer runs Asteroid's own file separation (a mono file at the model's rate, stems
    rescaled to the input's energy, 16-bit files) through UNet.forward_wav, the same bytes in a fresh
    process as in this one."""
    rng = np.random.default_rng(0)
    t = np.arange(3 * 8192) / 8192
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
    song = (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(tmp_path / "song.wav", song, 8192, subtype="FLOAT")
    for run in ("a", "b"):
        (tmp_path / run).mkdir()  # Asteroid writes into an existing folder
        run_asteroid_infer(PAPER_WEIGHTS, [tmp_path / "song.wav"], tmp_path / run, fresh_process=run == "a")
    stems = separate(torch.from_numpy(song), 8192, UNet.from_pretrained(str(PAPER_WEIGHTS)))  # the package's stems
    scale = np.abs(song).sum() / (stems["vocals"].abs().sum() + stems["accompaniment"].abs().sum())
    for i, stem in ((1, "vocals"), (2, "accompaniment")):
        a, b = (tmp_path / run / f"song_est{i}.wav" for run in ("a", "b"))
        assert a.read_bytes() == b.read_bytes()
        written, rate = sf.read(a)
        assert rate == 8192 and written.shape == song.shape
        np.testing.assert_allclose(written, (stems[stem] * scale).numpy(), atol=1e-4)


def test_an_entry_point_takes_a_given_model_as_it_is(small_model):
    from asteroid_unet.separate import resolve_model

    small_model.train()
    assert resolve_model(small_model) is small_model and small_model.training


def test_separator_does_not_move_or_change_the_callers_model(small_model):
    small_model.train()
    sep = Separator(small_model, 44100, device="meta")
    assert next(sep.model.parameters()).device.type == "meta"
    assert all(p.device.type == "cpu" for p in small_model.parameters())
    assert small_model.training and isinstance(small_model.masker.encoder[0].norm, torch.nn.BatchNorm2d)


def test_load_model_none_without_packaged_weights_raises(monkeypatch, tmp_path):
    """An install without its weights files gives a one-line error, not an untrained model."""
    import importlib.resources

    monkeypatch.setattr(importlib.resources, "files", lambda package: tmp_path)  # no weights/ there
    with pytest.raises(CheckpointError, match="weights"):
        load_model(None)


@pytest.mark.parametrize("spec", ["exp/best.pth", "exp/model.ckpt", "tests/unknown"])
def test_mistyped_local_path_is_not_a_hub_download(tmp_path, monkeypatch, spec):
    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr("asteroid.utils.hub_utils.cached_download", no_download)
    monkeypatch.chdir(ROOT)
    with pytest.raises(CheckpointError, match="no such file"):
        resolve(spec)


def test_repo_id_still_goes_to_the_hub(monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr("asteroid.utils.hub_utils.cached_download", lambda spec: asked.append(spec) or str(tmp_path))
    monkeypatch.setattr("huggingface_hub.get_hf_file_metadata", lambda url, timeout: None)  # the Hub answers
    monkeypatch.chdir(tmp_path)
    resolve("someone/unet-musdb@v1")
    assert asked == ["someone/unet-musdb@v1"]


def imported_modules(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_weights_does_not_import_the_model():
    package = ROOT / "asteroid_unet"
    assert not {".model", "asteroid_unet.model", "."} & imported_modules(package / "weights.py")
    assert ".weights" in imported_modules(package / "model.py")  # one direction only


PACKAGED = {name: ROOT / "asteroid_unet" / "weights" / file
            for name, file in (("paper", "unet_default.pth"), ("spleeter-2stems", "spleeter_2stems.pth"))}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PACKAGED))
def test_asteroid_infer_with_each_packaged_model_on_mono_and_stereo_files(tmp_path, name):
    """Asteroid's file separation, unchanged, writes valid stems with either packaged model: a stereo
    and a mono file at the model's rate (all channels kept), and a stereo 48 kHz file with
    ``--resample`` (Asteroid then takes its first channel)."""
    if not PACKAGED[name].is_file():
        pytest.skip(f"the {name} weights are not built")
    model = load_model(str(PACKAGED[name]))
    rate = int(model.sample_rate)
    rng = np.random.default_rng(0)
    songs = {"stereo": (rate, 2), "mono": (rate, 1), "other_rate": (48000, 2)}
    for song, (sr, channels) in songs.items():
        t = np.arange(2 * sr) / sr
        voice = 0.2 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * t))
        audio = voice[:, None] * [1.0, 0.7][:channels] + 0.03 * rng.standard_normal((t.size, channels))
        sf.write(tmp_path / f"{song}.wav", audio.astype(np.float32), sr, subtype="FLOAT")
    out = tmp_path / "out"
    out.mkdir()
    run_asteroid_infer(PACKAGED[name], [tmp_path / "stereo.wav", tmp_path / "mono.wav"], out)
    run_asteroid_infer(PACKAGED[name], [tmp_path / "other_rate.wav"], out, "--resample")
    for song, (sr, channels) in songs.items():
        mix = sf.read(tmp_path / f"{song}.wav", always_2d=True)[0]
        mix = mix if song != "other_rate" else mix[:, :1]
        est = [sf.read(out / f"{song}_est{i}.wav", always_2d=True) for i in (1, 2)]
        for data, data_rate in est:
            assert data_rate == sr and data.shape == mix.shape, (song, data.shape, mix.shape)
            assert np.isfinite(data).all() and np.abs(data).max() > 1e-3
        total = est[0][0] + est[1][0]  # Asteroid rescales the stems to the mix's energy
        if song == "other_rate":  # resampled to the model's rate and back by Asteroid: band-limited
            assert np.corrcoef(total[:, 0], mix[:, 0])[0, 1] > 0.95
        else:
            np.testing.assert_allclose(total, mix * np.abs(total).sum() / np.abs(mix).sum(), atol=1e-3)
    stereo = sf.read(out / "stereo_est1.wav")[0]
    assert not np.allclose(stereo[:, 0], stereo[:, 1], atol=1e-3)  # two real channels, not a copy
