import math

import pytest
import torch

from asteroid_unet import UNet, masked_magnitude_l1, unet_loss
from helpers import paper_model_with_statistics


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_paper_parameter_count():
    assert abs(n_params(UNet(targets=("vocals",))) - 9.82e6) < 0.05e6


def test_paper_defaults():
    model = UNet()
    assert model.sample_rate == 8192
    assert (model.n_fft, model.hop_length, model.n_bins, model.patch_frames) == (1024, 768, 512, 128)
    assert model.targets == ["vocals", "accompaniment"]
    convs = [b.conv for b in model.masker.encoder]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128, 256, 512]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    assert all(b.act.negative_slope == 0.2 for b in model.masker.encoder)
    dropouts = [getattr(b.dropout, "p", 0.0) for b in model.masker.decoder]
    assert dropouts == [0.5, 0.5, 0.5, 0.0, 0.0]
    assert model.masker.last.out_channels == 2


def test_patch_path_shapes_and_range():
    model = UNet().eval()
    patches = torch.rand(3, 1, 512, 128) * 50
    with torch.no_grad():
        masks = model.patch_masks(patches)
    assert masks.shape == (3, 2, 512, 128)
    assert masks.min() >= 0 and masks.max() <= 1


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((1,), (2, 1)),
        ((777,), (2, 777)),
        ((2, 8193), (2, 2, 8193)),
        ((2, 1, 30001), (2, 2, 30001)),
        ((1, 2, 12345), (1, 2, 2, 12345)),
        ((1, 1, 0), (1, 2, 0)),
    ],
)
def test_output_shape_and_exact_length(small_model, shape, expected):
    with torch.no_grad():
        assert tuple(small_model(torch.randn(*shape)).shape) == expected


def test_channels_are_independent(small_model):
    x = torch.randn(1, 2, 20000)
    with torch.no_grad():
        both = small_model(x)
        left = small_model(x[:, 0])
    torch.testing.assert_close(both[:, :, 0], left, atol=1e-5, rtol=0)


def test_all_ones_mask_reconstructs_above_60db():
    model = UNet().eval()
    model.masks_from_magnitude = lambda m: torch.ones(m.shape[0], 2, *m.shape[1:])
    x = torch.randn(2, 54321)
    with torch.no_grad():
        y = model(x)
    for target in range(2):
        err = y[:, target] - x
        snr = 10 * math.log10(x.pow(2).sum() / err.pow(2).sum())
        assert snr > 60


def test_masks_cover_long_inputs_on_a_fixed_grid(small_model):
    """A frame's mask depends only on the patches covering it: a longer input keeps early masks."""
    mag = torch.rand(1, 128, 200)
    with torch.no_grad():
        short = small_model.masks_from_magnitude(mag[..., :100])
        long = small_model.masks_from_magnitude(mag)
    assert long.shape == (1, 2, 128, 200)
    torch.testing.assert_close(short[..., :80], long[..., :80])


def test_gradients_reach_first_layer():
    model = UNet()
    mix = torch.randn(2, model.patch_samples)
    loss = unet_loss(model, mix, torch.stack([0.5 * mix, 0.5 * mix], 1))
    loss.backward()
    grad = model.masker.encoder[0].conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_loss_is_zero_for_perfect_masks():
    mix = torch.rand(2, 16, 8) + 0.1
    target = torch.stack([0.3 * mix, 0.7 * mix], 1)
    masks = torch.stack([torch.full_like(mix, 0.3), torch.full_like(mix, 0.7)], 1)
    assert masked_magnitude_l1(masks, mix, target) < 1e-6
    assert masked_magnitude_l1(1 - masks, mix, target) > 0.01


def test_loss_rejects_wrong_number_of_targets(small_model):
    with pytest.raises(ValueError, match="targets"):
        unet_loss(small_model, torch.randn(1, 5000), torch.randn(1, 3, 5000))


def test_invalid_configuration_is_a_clear_error():
    with pytest.raises(ValueError, match="multiples"):
        UNet(n_bins=500)
    with pytest.raises(ValueError, match="patch_hop"):
        UNet(patch_hop=0)


def test_inference_copy_gives_the_same_masks():
    model = paper_model_with_statistics()
    fast = model.for_inference()
    patches = torch.rand(2, 1, 512, 128)
    with torch.no_grad():
        torch.testing.assert_close(fast.patch_masks(patches), model.patch_masks(patches), atol=1e-5, rtol=0)
    assert model.masker.encoder[0].norm.__class__ is torch.nn.BatchNorm2d  # the original is untouched


def test_inference_copy_shares_spleeter_weights_already_in_its_layout(tmp_path):
    """Spleeter's layers have nothing to fold: the inference copy shares the weights that are already
    channels last (as the entry points load them), copies the others, and leaves the model as it was."""
    from asteroid_unet.model import spleeter_args
    from asteroid_unet.separate import resolve_model

    torch.manual_seed(0)
    model = UNet(**dict(spleeter_args(), sample_rate=8192.0, n_fft=256, hop_length=64, n_bins=64, patch_frames=16,
                        patch_hop=16, n_layers=2, first_channels=4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    shared = lambda a, b: [p.data_ptr() == q.data_ptr() for p, q in zip(a.masker.parameters(), b.masker.parameters())]
    conv = model.masker.unets[0].encoder[0].conv.weight
    needs_copy = [p.dim() == 4 and not p.is_contiguous(memory_format=torch.channels_last) for p in model.masker.parameters()]
    assert conv.is_contiguous() and any(needs_copy)
    assert not any(s and copy for s, copy in zip(shared(model, model.for_inference()), needs_copy))
    torch.save(model.serialize(), tmp_path / "m.pth")
    loaded = resolve_model(str(tmp_path / "m.pth"))
    assert loaded.masker.unets[0].encoder[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    fast = loaded.for_inference()
    assert all(shared(loaded, fast))
    patches = torch.rand(1, 2, 64, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast.patch_masks(patches), model.for_inference().patch_masks(patches), atol=0, rtol=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and conv.is_contiguous()
    assert all(torch.equal(before[k], v) for k, v in loaded.state_dict().items())


@pytest.mark.parametrize("n_fft, hop", [(512, 128), (1024, 768), (4096, 1024)])
def test_stft_filterbank_equals_asteroids(n_fft, hop):
    from asteroid_filterbanks import Encoder, TorchSTFTFB

    from asteroid_unet.filterbank import STFTFilterbank

    window = torch.hann_window(n_fft).numpy()
    ours = STFTFilterbank.from_torch_args(n_fft=n_fft, hop_length=hop, win_length=n_fft, window=window, sample_rate=8192.0)
    theirs = TorchSTFTFB.from_torch_args(n_fft=n_fft, hop_length=hop, win_length=n_fft, window=window, sample_rate=8192.0)
    assert dict(ours.get_config(), fb_name=None) == dict(theirs.get_config(), fb_name=None)
    assert torch.allclose(ours.filters(), theirs.filters(), rtol=0, atol=1e-12)
    assert torch.equal(ours.torch_window, theirs.torch_window)
    wav = torch.randn(1, 1, 4 * n_fft)
    assert torch.allclose(Encoder(ours)(wav), Encoder(theirs)(wav), atol=1e-6)


def test_ratio_loss_is_the_l1_of_the_separation_masks():
    """masks="ratio": the mix magnitude under the masks separation uses, against each target's."""
    from asteroid_unet.model import spleeter_args

    torch.manual_seed(0)
    model = UNet(**dict(spleeter_args(), sample_rate=8192.0, n_fft=256, hop_length=64, n_bins=64, patch_frames=16,
                        patch_hop=16, n_layers=2, first_channels=4)).eval()  # no dropout: the same masks twice
    mix = torch.randn(2, 2, model.patch_samples)
    targets = torch.stack([0.3 * mix, 0.7 * mix], 1)
    mix_mag = model.magnitude(mix)[..., : model.patch_frames]
    expected = (model.patch_masks(mix_mag) * mix_mag.unsqueeze(1) - torch.stack([0.3 * mix_mag, 0.7 * mix_mag], 1)).abs().mean()
    loss = unet_loss(model, mix, targets, masks="ratio")
    assert torch.allclose(loss, expected)
    assert not torch.allclose(loss, unet_loss(model, mix, targets))
    with pytest.raises(ValueError, match="masks"):
        unet_loss(model, mix, targets, masks="softmax")
