"""The most work one song may ask for, checked from its header before any decoding."""
import math
from pathlib import Path
from typing import NamedTuple, Optional

from .audio import AudioError, probe

MAX_RATE = 192000  # Hz: the highest sample rate a budget accepts by default
MAX_CHANNELS = 8  # the most channels a budget accepts by default


class WorkBudget(NamedTuple):
    """A bound on one song's work: its samples times channels at the model's rate, and its rate and channels.

    The model sees ``seconds x model rate`` samples per channel whatever the input's rate, so the
    budget is given in channel-seconds (samples x channels at the model's rate, over that rate):
    ``channel_seconds=1200`` takes 10 minutes of stereo, or 2.5 minutes of 8 channels. The rate
    limit bounds the full-band work at the input's own rate. The separator's work follows these at
    any rate, odd ones included (:func:`~asteroid_unet.grid.working_rate`).

    Args:
        channel_seconds: the most seconds x channels a song may have.
        max_rate: the highest sample rate (Hz). Default :data:`MAX_RATE`.
        max_channels: the most channels. Default :data:`MAX_CHANNELS`.
    """

    channel_seconds: float
    max_rate: int = MAX_RATE
    max_channels: int = MAX_CHANNELS

    def check(self, seconds: float, channels: int, sample_rate: int) -> None:
        """AudioError, with a one-line reason, for a song over the budget (NaN ``seconds``: length unknown yet)."""
        if sample_rate > self.max_rate:
            raise AudioError(f"{sample_rate} Hz; accepted up to {self.max_rate} Hz")
        if channels > self.max_channels:
            raise AudioError(f"{channels} channels; accepted up to {self.max_channels}")
        if not math.isnan(seconds) and seconds * channels > self.channel_seconds:
            raise AudioError(f"{seconds:.3g} s x {channels} channels is over the work budget of "
                             f"{self.channel_seconds:g} channel-seconds ({self.channel_seconds / 2:g} s of stereo)")

    def check_file(self, path: Path, offset: float = 0.0, duration: Optional[float] = None) -> None:
        """:meth:`check` with what the file's header says (soundfile or ffprobe), before decoding it, for
        the range of ``duration`` seconds (None: to the end) from ``offset``."""
        info = probe(Path(path))
        if info is not None:
            seconds = max(info.seconds - offset, 0.0)
            self.check(seconds if duration is None else min(seconds, duration), info.channels, info.sample_rate)
