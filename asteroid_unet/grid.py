"""The separator's frame grid at a sample rate, and the rate it works at.

The separator cuts a song where the model's frames fall on whole samples, and its full-band STFT hop
divides that step, so that chunks join without seams. At a rate sharing few factors with the model's,
that step is long and its hop short: 256 s and 256 samples at 191,999 Hz for Spleeter's 44.1 kHz model
(hop 1024), and the work would follow that grid instead of the song's length. :func:`working_rate` keeps
a rate whose grid is cheap and treats any other as the nearest rate whose grid is: the samples stay as
they are (stems keep the input's rate, length and channels, and sum to it), and the model hears the
song as if played that much faster or slower, at most 0.15 % (2.5 cents) from 8 to 192 kHz for the
packaged models, a fraction of the tuning differences between recordings.
"""
import math
from typing import NamedTuple

from .audio import AudioError
from .fullband import stft_size

MIN_RATE = 1000  # Hz: the lowest sample rate separated
# A cheap grid: segments round up to at most this many seconds (10.24 s at 8, 16 and 32 kHz for
# Spleeter's model), and the full-band STFT's frames overlap at most this many times (4 at 44.1 kHz).
MAX_STEP_SECONDS = 10.5
MAX_OVERLAP = 4
MAX_SHIFT = 0.01  # the farthest a working rate may lie from the input's, relative


class Grid(NamedTuple):
    """Where segments may start at a rate: every ``frame_step`` model frames (a whole number of
    samples), chunk borders every ``unit_frames`` (whole patch hops on that grid), and the
    full-band STFT's size ``n_fft`` and ``hop`` (which divides the step)."""

    frame_step: int
    unit_frames: int
    n_fft: int
    hop: int


def frame_grid(sample_rate: int, model_rate: int, hop_length: int, patch_hop: int) -> Grid:
    """The :class:`Grid` of a model (rate, STFT hop, patch hop) on samples at ``sample_rate``."""
    frame_step = model_rate // math.gcd(hop_length * sample_rate, model_rate)
    unit_frames = patch_hop * (model_rate // math.gcd(patch_hop * hop_length * sample_rate, model_rate))
    n_fft, hop = stft_size(frame_step * hop_length * sample_rate // model_rate, sample_rate)
    return Grid(frame_step, unit_frames, n_fft, hop)


def grid_cost(sample_rate: int, model_rate: int, hop_length: int, patch_hop: int, bound: float = math.inf) -> float:
    """How far the grid at ``sample_rate`` is over the cheap bounds (1 or less: cheap), or ``bound``
    when it is at least that far."""
    frame_step = model_rate // math.gcd(hop_length * sample_rate, model_rate)
    step_cost = frame_step * hop_length / model_rate / MAX_STEP_SECONDS
    if step_cost >= bound:  # the STFT's hop need not be found
        return bound
    grid = frame_grid(sample_rate, model_rate, hop_length, patch_hop)
    return max(step_cost, grid.n_fft / grid.hop / MAX_OVERLAP)


def working_rate(sample_rate: int, model_rate: int, hop_length: int, patch_hop: int) -> int:
    """The rate the separator takes samples at ``sample_rate`` to be at: that rate when its grid is
    cheap, else the nearest rate whose grid is (the higher of two as near), else the cheapest within
    :data:`MAX_SHIFT` of it. AudioError for a rate under :data:`MIN_RATE`."""
    if sample_rate < MIN_RATE:
        raise AudioError(f"a sample rate of {sample_rate} Hz is too low to separate; the lowest is {MIN_RATE} Hz")
    best, best_cost = sample_rate, math.inf
    for distance in range(int(sample_rate * MAX_SHIFT) + 1):
        for rate in (sample_rate + distance, sample_rate - distance):
            cost = grid_cost(rate, model_rate, hop_length, patch_hop, best_cost)
            if cost <= 1:
                return rate
            if cost < best_cost:
                best, best_cost = rate, cost
    return best
