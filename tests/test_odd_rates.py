"""Odd sample rates cost what common rates cost: the separator works on a nearby rate's cheap frame
grid (asteroid_unet.grid), its stems keep the input's own rate, length and channels."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from asteroid_unet.audio import AudioError
from asteroid_unet.grid import MIN_RATE, frame_grid, working_rate
from asteroid_unet.model import UNet, spleeter_args
from asteroid_unet.separate import separate

ROOT = Path(__file__).resolve().parents[1]
COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000)
PACKAGED = {"spleeter-2stems": (44100, 1024, 512), "paper": (8192, 768, 64)}  # model rate, STFT hop, patch hop


def test_packaged_grids_are_those_of_the_models():
    spleeter, paper = spleeter_args(), UNet()
    assert PACKAGED["spleeter-2stems"] == (spleeter["sample_rate"], spleeter["hop_length"], spleeter["patch_hop"])
    assert PACKAGED["paper"] == (paper.sample_rate, paper.hop_length, paper.patch_hop)


@pytest.mark.parametrize("model", sorted(PACKAGED))
def test_common_rates_keep_their_own_grid(model):
    """So their stems are what they were before odd rates moved."""
    assert [working_rate(rate, *PACKAGED[model]) for rate in COMMON_RATES] == list(COMMON_RATES)


@pytest.mark.parametrize("model", sorted(PACKAGED))
def test_every_rate_works_near_its_own_on_a_cheap_grid(model):
    """From 8 to 192 kHz the working rate lies within 0.15 % (2.5 cents), and its grid cuts segments
    every 10.5 s at most with a full-band STFT overlapping 4 times at most."""
    model_rate, hop, patch_hop = PACKAGED[model]
    for rate in [*range(8000, 192001, 997), 44101, 191999, 96001, 47999]:
        work = working_rate(rate, model_rate, hop, patch_hop)
        assert abs(work / rate - 1) < 0.0015, (rate, work)
        grid = frame_grid(work, model_rate, hop, patch_hop)
        assert grid.frame_step * hop / model_rate <= 10.5 and grid.n_fft <= 4 * grid.hop, (rate, work, grid)
    assert working_rate(191999, model_rate, hop, patch_hop) == 192000
    assert working_rate(44101, model_rate, hop, patch_hop) == 44100
    bad = frame_grid(44101, model_rate, hop, patch_hop)  # what 44,101 Hz would cost on its own grid
    assert bad.frame_step * hop / model_rate >= 3 and bad.n_fft >= 16 * bad.hop


def test_without_a_cheaper_grid_nearby_a_rate_keeps_its_own():
    """A model at a prime rate (8191 Hz) cuts every rate's songs as coarsely: no rate is worth moving to."""
    assert [working_rate(rate, 8191, 768, 64) for rate in (44101, 44100, 191999)] == [44101, 44100, 191999]


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_odd_rate_stems_are_the_nearby_rates_stems_of_the_same_samples(small_model, channels):
    """At 44,101 Hz the separator takes the samples to be at 44,100 Hz: the same stems, to the bit,
    of the input's length and channels, summing to it."""
    x = torch.randn(channels, 30000) * 0.1
    odd, near = separate(x, 44101, small_model), separate(x, 44100, small_model)
    for name in odd:
        assert odd[name].shape == x.shape and torch.equal(odd[name], near[name])
    torch.testing.assert_close(sum(odd.values()), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("rate", [1, 8, MIN_RATE - 1, 0, -44100])
def test_a_rate_too_low_is_one_line(small_model, rate):
    with pytest.raises(AudioError) as err:
        separate(torch.randn(2, 100) * 0.1, rate, small_model)
    assert str(err.value) == f"a sample rate of {rate} Hz is too low to separate; the lowest is {MIN_RATE} Hz"


# The child processes' stopwatch: benchmarks/odd_rates.py's (CPU time, RSS sampled while a job runs).
WATCH = textwrap.dedent("""
    import json, sys
    import torch
    from benchmarks.odd_rates import watched
    torch.set_num_threads(1)  # CPU time without OpenMP threads spinning for a core the other test worker holds
""")

# One fresh process: both packaged models loaded, and for each pair of rates a short warm-up at each
# (its separator built), then each rate separated three times in turn, the best of the three kept.
MEASURE = WATCH + textwrap.dedent("""
    from asteroid_unet.separate import resolve_model, separate

    def measure(model, seconds, rate):
        \"\"\"CPU seconds, peak RSS and its rise over the RSS before (MB) of one separation.\"\"\"
        x = torch.randn(2, int(seconds * rate), generator=torch.Generator().manual_seed(0)) * 0.1
        _, _, cpu, before, peak, _ = watched(lambda: separate(x, rate, model))
        return cpu, peak, peak - before

    out, models = [], {}
    for name, seconds, rates in json.loads(sys.argv[1]):
        model = models.setdefault(name, resolve_model(name))
        for rate in rates:  # each rate's separator built, the kernels warm
            measure(model, 0.1, rate)
        runs = [[measure(model, seconds, rate) for rate in rates] for _ in range(3)]
        out.append([[min(values) for values in zip(*at_rate)] for at_rate in zip(*runs)])
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_odd_rates_cost_what_common_rates_cost():
    """1 s of stereo at 191,999 Hz and 3 s at 44,101 Hz, with both packaged models, take at most 1.5x
    the CPU time and peak memory of 192,000 Hz and 44,100 Hz (they took 20x and 5x before). The
    memory a separation adds to the loaded models may exceed 1.5x by the allocator's 32 MB."""
    cases = [(name, seconds, pair) for name in ("spleeter-2stems", "paper")
             for seconds, pair in ((1.0, (192000, 191999)), (3.0, (44100, 44101)))]
    proc = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(cases)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for (name, seconds, (common, odd)), (at_common, at_odd) in zip(cases, json.loads(proc.stdout.splitlines()[-1])):
        where = f"{name}, {seconds:g} s at {odd} against {common} Hz: CPU s, peak MB, rise MB {at_odd} vs {at_common}"
        cpu, peak, rise = at_odd
        assert cpu <= 1.5 * at_common[0] and peak <= 1.5 * at_common[1] and rise <= 1.5 * at_common[2] + 32, where


# A fresh process: the paper model separates 20 s of stereo at 96,001 Hz once from a file (caches warm),
# then again from the file and from memory, each time with RSS sampled during the job and read after it.
RETURN = WATCH + textwrap.dedent("""
    import numpy as np, soundfile as sf
    from asteroid_unet.separate import resolve_model, separate, separate_file
    folder, model, rate = sys.argv[1], resolve_model("paper"), 96001
    song = np.random.default_rng(0).standard_normal((20 * rate, 2)).astype(np.float32) * 0.1
    sf.write(folder + "/song.wav", song, rate)
    separate_file(folder + "/song.wav", folder + "/warm", model)
    _, _, _, before, peak, after = watched(lambda: separate_file(folder + "/song.wav", folder + "/out", model))
    stems, _, _, api_before, api_peak, api_after = watched(lambda: separate(song.T, rate, model))
    stems_mb = sum(stem.numel() * stem.element_size() for stem in stems.values()) / 2**20
    print(json.dumps([peak - before, after - before, api_peak - api_before, api_after - api_before - stems_mb]))
""")


@pytest.mark.slow
def test_memory_goes_back_after_a_song(tmp_path):
    """What a song's separation took (from a file, as the command line, the page and Ray run it, or from
    memory) goes back to the system when it ends: at most a quarter of its peak stays held, and the
    next song takes its memory afresh (kept by the allocator instead, the rise would barely show)."""
    proc = subprocess.run([sys.executable, "-c", RETURN, str(tmp_path)], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    file_peak, file_after, api_peak, api_after = json.loads(proc.stdout.splitlines()[-1])
    assert file_peak > 50 and file_after < 0.25 * file_peak, (file_peak, file_after)
    assert api_peak > 50 and api_after < 0.25 * api_peak, (api_peak, api_after)
