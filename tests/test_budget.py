"""The work budget: refused before decoding, one line, the same on the CLI, the Python API and the page;
and the separator cache that keeps memory flat over many sample rates."""
import time

import numpy as np
import pytest
import soundfile as sf

from asteroid_unet import separator
from asteroid_unet.audio import AudioError
from asteroid_unet.budget import WorkBudget
from asteroid_unet.cli import main
from asteroid_unet.separate import separate, separate_file


def tone(path, seconds, rate, channels):
    t = np.arange(int(seconds * rate)) / rate
    data = np.repeat(0.1 * np.sin(2 * np.pi * 440 * t)[:, None], channels, 1).astype(np.float32)
    sf.write(str(path), data, rate, subtype="PCM_16")
    return path


def test_the_budget_counts_seconds_times_channels_and_bounds_rate_and_channels():
    budget = WorkBudget(120)  # 60 s of stereo
    budget.check(60, 2, 44100)
    budget.check(15, 8, 44100)
    budget.check(float("nan"), 2, 44100)  # length unknown from the header: checked once decoded
    with pytest.raises(AudioError, match=r"^55 s x 8 channels is over the work budget of 120 channel-seconds "
                                         r"\(60 s of stereo\)$"):
        budget.check(55, 8, 44100)
    with pytest.raises(AudioError, match=r"^655350 Hz; accepted up to 192000 Hz$"):
        budget.check(2, 8, 655350)
    with pytest.raises(AudioError, match=r"^9 channels; accepted up to 8$"):
        budget.check(1, 9, 44100)


def test_the_cli_refuses_a_song_over_budget_before_decoding(tmp_path, small_model, capsys):
    import torch

    model = tmp_path / "tiny.pth"
    torch.save(small_model.serialize(), model)
    wide = tone(tmp_path / "wide.flac", 2.0, 48000, 8)
    ok = tone(tmp_path / "ok.wav", 1.0, 22050, 2)
    start = time.monotonic()
    code = main(["separate", str(wide), str(ok), "-o", str(tmp_path / "out"), "--model", str(model), "--max-work", "10"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and time.monotonic() - start < 30
    assert err == [f"asteroid-unet: error: {wide}: 2 s x 8 channels is over the work budget of 10 channel-seconds "
                   f"(5 s of stereo)"]
    assert (tmp_path / "out" / "ok" / "vocals.wav").is_file() and not (tmp_path / "out" / "wide").exists()
    assert main(["separate", str(ok), "--max-work", "0"]) == 2


def test_the_api_takes_the_same_budget(tmp_path, small_model):
    fast = tone(tmp_path / "fast.wav", 0.5, 655350, 1)
    with pytest.raises(AudioError, match="655350 Hz; accepted up to 192000 Hz"):
        separate_file(fast, tmp_path / "out", small_model, budget=WorkBudget(60))
    assert not (tmp_path / "out" / "fast").exists()
    with pytest.raises(AudioError, match="3 s x 4 channels is over the work budget of 10"):
        separate(np.zeros((4, 3 * 8000), np.float32), 8000, small_model, budget=WorkBudget(10))
    stems = separate(np.zeros((2, 8000), np.float32), 8000, small_model, budget=WorkBudget(10))
    assert stems["vocals"].shape == (2, 8000)


def test_the_separator_cache_keeps_the_most_recent_few(small_model):
    separator._SEPARATORS.clear()
    first = separator.separator_for(small_model, 8000)
    assert separator.separator_for(small_model, 8000) is first  # reused
    for rate in range(9000, 9000 + 3 * separator.SEPARATOR_CACHE):
        separator.separator_for(small_model, rate)
    assert len(separator._SEPARATORS) == separator.SEPARATOR_CACHE
    rebuilt = separator.separator_for(small_model, 8000)  # evicted meanwhile: built again, same results
    assert rebuilt is not first
    x = np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.separate(x)["vocals"].numpy(), first.separate(x)["vocals"].numpy())
