"""A Spleeter-shaped UNet (random weights, few filters) through every entry point: serialisation, the
separator (per-channel masks, full band and band-limited, chunks), model names, Hub export and SpeechBrain."""
import numpy as np
import pytest
import torch
import yaml

from helpers import band_sum_error, load_from_offline_hub, small_spleeter_model

from asteroid_unet import UNet, hub, load_model, separate
from asteroid_unet.masknet import DecoderBlock, same_padding
from asteroid_unet.weights import packaged_path, packaged_provenance

RATE = 44100


@pytest.fixture(scope="module")
def model():
    return small_spleeter_model()


@pytest.fixture(scope="module")
def stereo_mix():
    """5 s of stereo: a high tone on the left and low noise bursts on the right, and some of each in both."""
    rng = np.random.default_rng(0)
    t = np.arange(5 * RATE) / RATE
    tone = np.sin(2 * np.pi * 880 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    noise = rng.standard_normal(t.size) * (np.mod(t, 0.4) < 0.1)
    return torch.tensor(np.stack([0.5 * tone + 0.05 * noise, 0.1 * tone + 0.3 * noise]), dtype=torch.float32)


def test_tensorflow_same_padding():
    assert same_padding(512, 5, 2) == (1, 2)  # even sizes: the extra row after, as TensorFlow
    assert same_padding(7, 5, 2) == (2, 2)
    assert same_padding(1024, 4, 1, dilation=2) == (3, 3)


@pytest.mark.parametrize("kernel_size", [2, 3, 4, 5])
def test_decoder_crops_as_tensorflow_same(kernel_size):
    """A decoder block's transposed conv keeps the rows and columns TensorFlow's "same" keeps of
    the full output, whatever padding the block gives the conv itself."""
    torch.manual_seed(0)
    block = DecoderBlock(6, 3, kernel_size, 2, 0.0, act_before_norm=True, tf_padding=True).eval()
    x = torch.randn(2, 6, 8, 5)
    full = torch.nn.functional.conv_transpose2d(x, block.conv.weight, block.conv.bias, stride=2)
    top, left = same_padding(16, kernel_size, 2)[0], same_padding(10, kernel_size, 2)[0]
    expected = block.norm(torch.relu(full[..., top : top + 16, left : left + 10]))
    assert torch.allclose(block(x), expected, atol=1e-6)


def test_spleeter_layout(model):
    unet = model.masker.unets[0]
    assert len(model.masker.unets) == 2 and unet.encoder[0].conv.in_channels == 2
    assert isinstance(unet.encoder[-1].norm, torch.nn.Identity)  # the bottleneck reaches the decoder raw
    assert [b.conv.out_channels for b in unet.decoder][-1] == 1 and unet.last.dilation == (2, 2)
    assert all(b.norm.eps == 1e-3 and b.act_before_norm for b in unet.decoder)


def test_round_trip_through_a_weights_only_file(model, tmp_path):
    torch.save(model.serialize(), tmp_path / "m.pth")
    loaded = load_model(tmp_path / "m.pth")
    assert loaded.get_model_args() == model.get_model_args()
    x = torch.randn(1, 2, 20000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_forward_needs_the_model_channels(model):
    with pytest.raises(ValueError, match="2-channel"):
        model(torch.randn(1, 3000))
    with torch.no_grad():
        assert model(torch.randn(2, 2, 3000)).shape == (2, 2, 2, 3000)


def test_band_limited_separator_is_the_model_pipeline_with_per_channel_masks(model, stereo_mix):
    stems = separate(stereo_mix, RATE, model, full_band=False, wiener_iterations=0, precision="float32")
    with torch.no_grad():
        direct = model(stereo_mix[None])[0]  # float32 on both sides; Spleeter's own pipeline: per-channel masks, zeros above the band
    for i, name in enumerate(model.targets):
        err = (stems[name] - direct[i]).abs()
        assert err[:, 1024:].max() < 1e-3, name  # all but the first 1024 samples (one iSTFT frame fewer)
    with torch.no_grad():
        masks = model.masks_from_magnitude(model.magnitude(stereo_mix[None]))[0]  # (targets, channels, bins, frames)
    assert (masks[:, 0] - masks[:, 1]).abs().max() > 0.1  # the channels' masks differ, and the separator kept them


def test_band_limited_stems_add_up_to_the_mix_in_band_and_are_silent_above(model, stereo_mix):
    full = separate(stereo_mix, RATE, model)
    limited = separate(stereo_mix, RATE, model, full_band=False)
    top_hz = model.n_bins * RATE / model.n_fft  # 2756 Hz for this small model
    assert band_sum_error(limited, stereo_mix, RATE, 0.9 * top_hz) < 0.05  # each channel keeps its own mix
    for stems in (full, limited):
        spectrum = torch.fft.rfft(stems["accompaniment"]).abs()
        above = spectrum[:, int(1.2 * top_hz * stereo_mix.shape[-1] / RATE):].pow(2).sum()
        share = above / spectrum.pow(2).sum()
        if stems is limited:
            assert share < 1e-5
        else:
            assert share > 1e-3  # the noise's high band is carried


def test_chunks_agree_with_whole_separation(model, stereo_mix):
    whole = separate(stereo_mix, RATE, model, wiener_iterations=0)
    chunked = separate(stereo_mix, RATE, model, chunk_seconds=1.5, wiener_iterations=0)  # chunks of one patch (1.49 s)
    for name in whole:
        torch.testing.assert_close(chunked[name], whole[name], rtol=0, atol=1e-4)


def test_mono_and_other_rates_go_through_the_downmix(model, stereo_mix):
    mono = separate(stereo_mix[0], RATE, model)
    assert mono["vocals"].shape == stereo_mix[0].shape
    low = separate(stereo_mix[:, ::2], RATE // 2, model)
    assert low["vocals"].shape == stereo_mix[:, ::2].shape and torch.isfinite(low["vocals"]).all()


def test_an_existing_path_wins_over_a_name(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save(model.serialize(), tmp_path / "paper")
    assert load_model("paper").audio_channels == 2


@pytest.mark.skipif(not packaged_path("paper").is_file(), reason="this build ships no paper weights")
def test_the_paper_name_loads_the_paper_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    paper = load_model("paper")
    assert paper.sample_rate == 8192 and paper.audio_channels == 1


def test_hub_export_loads_in_asteroid_and_speechbrain_offline(model, tmp_path):
    from asteroid_unet.speechbrain import UNetSeparator

    package = model.serialize()
    package["model_args"]["provenance"] = packaged_provenance("spleeter-2stems")  # what the converter records
    torch.save(package, tmp_path / "model.pth")
    folder = hub.export(tmp_path / "model.pth", tmp_path / "hub", "someone/spleeter-2stems")
    card = (folder / "README.md").read_text()
    assert yaml.safe_load(card.split("---")[1])["license"] == "mit" and "Deezer" in card
    assert "The network itself runs on 2 channels at 44100 Hz" in card
    printed = load_from_offline_hub(tmp_path / "cache", "someone/spleeter-2stems", folder / "pytorch_model.bin",
                                    "audio_channels")
    assert printed == ["UNet", "2"]
    sep = UNetSeparator.from_hparams(source=str(folder), savedir=str(tmp_path / "sb"))
    x = torch.randn(1, 2, 20000)
    with torch.no_grad():
        expected = UNet.from_pretrained(str(folder / "pytorch_model.bin")).eval()(x)
        torch.testing.assert_close(sep.mods.model(x), expected, rtol=0, atol=0)
        assert sep.separate_batch(x[:, 0]).shape == (1, 20000, 2)


@pytest.mark.parametrize("offset", [-2, 0, 3])
@pytest.mark.parametrize("band_limited", [False, True])
def test_masks_on_the_model_grid_are_taken_as_they_are(offset, band_limited):
    from asteroid_unet.fullband import interpolate_mask

    mask = torch.rand(2, 2, 64, 30)
    out = interpolate_mask(mask, model_bin_hz=10.0, model_frame_s=0.1, n_freqs=100, bin_hz=10.0, n_frames=40,
                           frame_s=0.1, offset_frames=offset, band_limited=band_limited)
    high = torch.zeros(2, 2, 1, 30) if band_limited else mask[..., 32:, :].mean(-2, keepdim=True)
    frames = (torch.arange(40) - offset).clamp(0, 29)
    torch.testing.assert_close(out, torch.cat([mask, high.expand(2, 2, 36, 30)], -2)[..., frames], rtol=0, atol=0)
