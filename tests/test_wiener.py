"""The torch Wiener filter (asteroid_unet.wiener) against sigsep's norbert 0.2.1 (a test-only
dependency), on the same inputs: the filter alone, and the separator's stems with either filter."""

import pytest
import torch

import asteroid_unet.separator as separator_module
from asteroid_unet.separate import separate
from asteroid_unet.wiener import wiener
from create_golden import golden_input

norbert = pytest.importorskip("norbert")


def norbert_wiener(estimates, mix, iterations=1, keep=None):
    """``norbert.wiener`` with :func:`wiener`'s arguments and layout."""
    out = norbert.wiener(estimates.permute(3, 2, 1, 0).numpy().copy(), mix.permute(2, 1, 0).numpy().copy(), iterations)
    return torch.from_numpy(out).permute(3, 2, 1, 0)[:keep]


def relative_difference(a, b):
    return ((a - b).abs().norm() / b.abs().norm()).item()


def spectrograms(sources, channels, shared, seed=0):
    """A mixture STFT ``(channels, 300, 80)`` with loud and quiet bins, and magnitude estimates."""
    g = torch.Generator().manual_seed(seed)
    loudness = 50 * torch.rand(1, 300, 1, generator=g) ** 4
    parts = torch.randn(2, channels, 300, 80, generator=g)
    mix = torch.complex(parts[0], parts[1]) * loudness
    estimates = torch.rand(sources, 1 if shared else channels, 300, 80, generator=g) * mix.abs().mean(0)
    return estimates, mix


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("iterations", [0, 1, 2])
def test_filter_equals_norbert(channels, iterations):
    estimates, mix = spectrograms(2, channels, shared=False)
    ours, ref = wiener(estimates, mix, iterations), norbert_wiener(estimates, mix, iterations)
    assert ours.shape == ref.shape == (2, channels, 300, 80) and ours.dtype == torch.complex64
    assert relative_difference(ours, ref) < 1e-5


def test_filter_with_shared_estimates_and_kept_sources_equals_norbert():
    """Estimates with one channel for every channel (a mono model on stereo), three sources, the first two kept."""
    estimates, mix = spectrograms(3, 2, shared=True, seed=1)
    ours = wiener(estimates, mix, 1, keep=2)
    assert ours.shape == (2, 2, 300, 80)
    assert relative_difference(ours, norbert_wiener(estimates, mix, 1)[:2]) < 1e-5


def test_filter_leaves_its_inputs_unchanged():
    estimates, mix = spectrograms(2, 2, shared=False)
    before = (estimates.clone(), mix.clone())
    wiener(estimates, mix, 2)
    assert torch.equal(estimates, before[0]) and torch.equal(mix, before[1])


def stems_with(filter_fn, monkeypatch, x, model):
    """The stems of ``separate`` (one Wiener iteration, channel-swap averaging) with ``filter_fn`` as the filter."""
    with monkeypatch.context() as patch:
        patch.setattr(separator_module, "wiener", filter_fn)
        return separate(x, 44100, model, wiener_iterations=1, tta=True)


@pytest.mark.parametrize("model", ["spleeter-2stems", "paper"])
def test_separator_stems_on_real_music_equal_those_with_norbert(model, monkeypatch):
    """The Falcon 69 preview (a MUSDB18 test song, here only for numerics), stereo and mono."""
    from asteroid_unet.demo import PREVIEW, true_stems

    refs, rate = true_stems(PREVIEW)
    song = torch.from_numpy((refs["vocals"] + refs["accompaniment"]).T.astype("float32"))
    assert rate == 44100
    for x in (song, song.mean(0)):
        ours, ref = stems_with(wiener, monkeypatch, x, model), stems_with(norbert_wiener, monkeypatch, x, model)
        for name in ours:
            assert relative_difference(ours[name], ref[name]) < 1e-4, (model, tuple(x.shape), name)


def test_ill_conditioned_song_is_as_close_to_exact_as_norbert(monkeypatch):
    """The golden song's backing is the same in both channels: each bin's mix covariance is close to
    singular, and any float32 filter drifts from the exact one (the same algorithm and epsilon in
    float64) by about 1e-4 of the stems. Ours stays within 1.5 times norbert's own drift."""
    eps = torch.finfo(torch.float32).eps

    def exact(estimates, mix, iterations=1, keep=None):
        return wiener(estimates.double(), mix.to(torch.complex128), iterations, keep, eps=eps).to(mix.dtype)

    x = golden_input()
    ours, ref, truth = (stems_with(f, monkeypatch, x, "paper") for f in (wiener, norbert_wiener, exact))
    for name in ours:
        drift, norbert_drift = relative_difference(ours[name], truth[name]), relative_difference(ref[name], truth[name])
        assert 1e-6 < norbert_drift < 2e-4 and drift < 1.5 * norbert_drift, (name, drift, norbert_drift)
        assert relative_difference(ours[name], ref[name]) < 2e-4
