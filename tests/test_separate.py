import math

import numpy as np
import pytest
import soundfile as sf
import torch

from asteroid_unet import UNet
from asteroid_unet.audio import AudioError
from asteroid_unet.separate import separate, separate_file
from asteroid_unet.separator import Separator
from helpers import band_sum_error

import asteroid_unet.separator as separator_module


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return UNet().eval()


def music(seconds, rate, channels=2, seed=0):
    """A full-band test signal: harmonic tones with vibrato over noise bursts."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    voice = sum(torch.sin(2 * np.pi * k * 220 * t + 3 * torch.sin(2 * np.pi * 5 * t)) / k for k in range(1, 12))
    noise = torch.randn(channels, t.numel(), generator=g) * (torch.sin(2 * np.pi * 2 * t) > 0)
    return 0.1 * voice + 0.05 * noise


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 8000])
def test_wiener_filtered_stems_add_up_to_the_input_in_the_models_band(paper_model, rate):
    """Band-limited, every stem is filtered on its own (nothing makes one the rest of the input), and the
    Wiener filter shares each bin's mix between the sources: their sum is the input below the band."""
    x = music(5, rate)
    stems = separate(x, rate, paper_model, full_band=False, wiener_iterations=1)
    assert set(stems) == {"vocals", "accompaniment"}
    for s in stems.values():
        assert s.shape == x.shape and torch.isfinite(s).all()
    top = min(rate / 2, paper_model.sample_rate / 2) * 0.9
    assert band_sum_error(stems, x, rate, top) < 0.05  # norbert regularises quiet bins (about 1 % here)


def test_output_is_full_band(paper_model):
    """Content above the model's 4 kHz band reaches the vocals stem too."""
    rate = 44100
    t = torch.arange(3 * rate) / rate
    x = (0.3 * torch.sin(2 * np.pi * 9000 * t) + 0.3 * torch.sin(2 * np.pi * 440 * t)).repeat(2, 1)
    vocals = separate(x, rate, paper_model)["vocals"]
    spectrum = torch.fft.rfft(vocals[0]).abs()
    freqs = torch.fft.rfftfreq(vocals.shape[-1], 1 / rate)
    assert spectrum[(freqs > 8900) & (freqs < 9100)].max() > 0.01 * spectrum.max()


def test_chunked_equals_whole(paper_model):
    """The ratio masks of a chunked pass are those of one whole pass (the Wiener filter's spatial
    statistics, estimated per block, are not: see test_wiener_blocks_stay_close_to_one_block)."""
    rate = 44100
    x = music(40, rate)
    whole = separate(x, rate, paper_model, chunk_seconds=1000, wiener_iterations=0)
    chunked = separate(x, rate, paper_model, chunk_seconds=6, wiener_iterations=0)
    for name in whole:
        assert (whole[name] - chunked[name]).abs().max() / x.abs().max() < 1e-4


def test_wiener_blocks_stay_close_to_one_block(paper_model, monkeypatch):
    """With the Wiener filter, each 10 s block estimates its own spatial statistics: blocks of 1.3 s
    change the stems a little, not more (the same model outputs, the same filter)."""
    x = music(25, 44100)
    monkeypatch.setattr(separator_module, "MASK_BLOCK_SECONDS", 1000.0)
    whole = separate(x, 44100, paper_model, wiener_iterations=1)
    monkeypatch.setattr(separator_module, "MASK_BLOCK_SECONDS", 1.3)
    blocked = separate(x, 44100, paper_model, wiener_iterations=1)
    difference = (whole["vocals"] - blocked["vocals"]).norm() / whole["vocals"].norm()
    assert 0 < difference < 0.1


@pytest.mark.parametrize("full_band", [True, False])
def test_masking_in_blocks_changes_no_sample(paper_model, monkeypatch, full_band):
    """The full-band STFT, masking and inverse STFT of a chunk go in blocks that bound their memory;
    every block sees the frames reaching into it, so the stems are the same to the bit."""
    x = music(25, 44100)
    monkeypatch.setattr(separator_module, "MASK_BLOCK_SECONDS", 1000.0)
    whole = separate(x, 44100, paper_model, full_band=full_band, wiener_iterations=0)
    monkeypatch.setattr(separator_module, "MASK_BLOCK_SECONDS", 1.3)
    blocked = separate(x, 44100, paper_model, full_band=full_band, wiener_iterations=0)
    for name in whole:
        assert torch.equal(whole[name], blocked[name])


def test_each_patch_goes_through_the_network_once(paper_model, monkeypatch):
    """Chunks reuse the patches their neighbours computed: as many network patches as one whole pass."""
    counted = []
    network_masks = UNet.network_masks
    monkeypatch.setattr(UNet, "network_masks", lambda self, p: counted.append(p.shape[0]) or network_masks(self, p))
    x = music(40, 44100)
    totals = {}
    for chunk_seconds in (1000, 13, 6):
        counted.clear()
        separate(x, 44100, paper_model, chunk_seconds=chunk_seconds)
        totals[chunk_seconds] = sum(counted)
    frames = 1 + 40 * 8192 // 768  # the song's model frames
    assert totals[1000] == math.ceil(frames / 64) + 1  # patches every 64 frames, from 64 frames before the song
    assert totals[13] == totals[6] == totals[1000]


def test_chunk_geometry_bounds_memory(paper_model):
    sep = Separator(paper_model, 44100, chunk_seconds=120)
    assert sep.chunk % sep.unit == 0 and sep.unit % sep.hop == 0 and sep.margin % sep.hop == 0
    assert sep.chunk == 120 * 44100  # 20 patch hops of 6 s
    assert sep.margin == 7.5 * 44100  # 64 + 16 frames, rounded up to whole samples


@pytest.mark.parametrize("shape", [(0,), (1,), (700,), (2, 1), (1, 30000), (6, 20000)])
def test_any_length_and_channels(small_model, shape):
    x = torch.randn(*shape) * 0.1
    stems = separate(x, 44100, small_model)
    for s in stems.values():
        assert s.shape == x.shape and torch.isfinite(s).all()


def test_numpy_input(small_model):
    x = np.random.default_rng(0).standard_normal((2, 9000)).astype(np.float32) * 0.1
    stems = separate(x, 16000, small_model)
    assert stems["vocals"].shape == (2, 9000)


def test_silence_gives_silence(paper_model):
    stems = separate(torch.zeros(2, 44100), 44100, paper_model)
    assert all(torch.equal(s, torch.zeros(2, 44100)) for s in stems.values())


def test_nan_is_a_clear_error(small_model):
    x = torch.randn(1, 20000)
    x[0, 100] = float("nan")
    with pytest.raises(AudioError, match="NaN"):
        separate(x, 44100, small_model)


def test_deterministic(paper_model):
    x = music(3, 44100)
    a, b = separate(x, 44100, paper_model), separate(x, 44100, paper_model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_single_target_model_gets_residual_accompaniment():
    torch.manual_seed(0)
    model = UNet(targets=("vocals",), n_layers=4, first_channels=4, patch_frames=32, patch_hop=16, n_bins=128)
    x = torch.randn(2, 20000) * 0.1
    stems = separate(x, 44100, model, full_band=False, wiener_iterations=1)
    assert set(stems) == {"vocals", "accompaniment"}  # the second source's estimate is 1 - the vocals mask
    assert band_sum_error(stems, x, 44100, 900) < 0.05  # this model's band ends at 1 kHz


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_separate_file_writes_stems_at_input_rate(tmp_path, small_model, fmt):
    x = music(3, 44100).T.numpy()
    src = tmp_path / "song.wav"
    sf.write(src, x, 44100)
    written = separate_file(src, tmp_path / "out", small_model, fmt=fmt)
    assert sorted(written) == ["accompaniment", "vocals"]
    for path in written.values():
        assert path == tmp_path / "out" / "song" / f"{path.stem}.{fmt}"
        data, rate = sf.read(path)
        assert rate == 44100 and data.shape[1] == 2
        assert abs(len(data) - len(x)) <= (0 if fmt != "mp3" else 2000)
    assert not list((tmp_path / "out" / "song").glob(".*partial"))


def test_separate_file_keeps_existing_outputs(tmp_path, small_model):
    src = tmp_path / "a.wav"
    sf.write(src, music(1, 8000).T.numpy(), 8000)
    first = separate_file(src, tmp_path, small_model)
    before = first["vocals"].read_bytes()
    with pytest.raises(AudioError, match="exists"):
        separate_file(src, tmp_path, small_model)
    assert first["vocals"].read_bytes() == before
    separate_file(src, tmp_path, small_model, force=True)


def test_separate_file_reads_stem_mp4(tmp_path, small_model):
    from asteroid_unet.demo import PREVIEW

    written = separate_file(PREVIEW, tmp_path, small_model)
    data, rate = sf.read(written["vocals"])
    assert rate == 44100 and data.shape[1] == 2 and len(data) > 5 * 44100
    assert (tmp_path / "The Easton Ellises - Falcon 69").is_dir()
