"""Spectrogram pictures of a mix and its stems, on one colour scale, read in blocks (bounded memory)."""
import math
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch

from .audio import AudioReader

DYNAMIC_RANGE_DB = 80.0


def spectrogram_db(reader: AudioReader, columns: int = 600, n_fft: int = 2048, block_columns: int = 64) -> np.ndarray:
    """Power of the channels' mean spectrum in dB, ``(n_fft // 2 + 1, columns)``, averaged over each column's span.

    The file is read ``block_columns`` columns at a time, so memory does not grow with its length.

    Args:
        reader: an open :class:`~asteroid_unet.audio.AudioReader` (anything with ``read``, ``frames``).
        columns (int): time columns of the picture (fewer for a file shorter than ``columns`` samples).
        n_fft (int): STFT window. Default 2048.
        block_columns (int): columns computed per read. Default 64.
    """
    columns = max(1, min(columns, reader.frames))
    span = math.ceil(reader.frames / columns)  # input samples per column
    hop = max(1, min(n_fft // 4, span))
    window = torch.hann_window(n_fft)
    power = torch.zeros(n_fft // 2 + 1, columns)
    for first in range(0, columns, block_columns):
        n_cols = min(block_columns, columns - first)
        start = first * span
        x = reader.read(start - n_fft // 2, start + n_cols * span + n_fft // 2)
        spec = torch.stft(x, n_fft, hop, window=window, center=False, return_complex=True).abs().square().mean(0)
        owner = (torch.arange(spec.shape[-1]) * hop // span).clamp_max(n_cols - 1)  # frame -> column in this block
        counts = torch.zeros(n_cols).index_add_(0, owner, torch.ones(owner.shape))
        power[:, first : first + n_cols] = torch.zeros(spec.shape[0], n_cols).index_add_(1, owner, spec) / counts.clamp_min(1)
    return 10 * np.log10(power.numpy() + 1e-10)


def render_spectrograms(paths: Dict[str, Path], out_dir: Path, columns: int = 600) -> Dict[str, Path]:
    """One PNG per file (``out_dir/<name>.png``), all on the colour scale of the loudest.

    The scale spans ``DYNAMIC_RANGE_DB`` below the highest value over all files, so a stem that
    looks darker than the mix in some region really holds less energy there.
    """
    specs, rates, durations = {}, {}, {}
    for name, path in paths.items():
        with AudioReader(path) as reader:
            specs[name] = spectrogram_db(reader, columns)
            rates[name], durations[name] = reader.sample_rate, reader.frames / reader.sample_rate
    top = max(float(s.max()) for s in specs.values())
    out_dir.mkdir(parents=True, exist_ok=True)
    return {name: _save_picture(specs[name], name, rates[name], durations[name], (top - DYNAMIC_RANGE_DB, top),
                                out_dir / f"{name}.png") for name in specs}


def _save_picture(spec_db: np.ndarray, title: str, rate: int, duration: float, limits: Sequence[float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 2.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(spec_db, origin="lower", aspect="auto", cmap="magma", vmin=limits[0], vmax=limits[1],
                      extent=(0, duration, 0, rate / 2000), interpolation="nearest")
    ax.set(title=title, xlabel="time (s)", ylabel="kHz")
    fig.colorbar(image, ax=ax, label="dB", pad=0.01)
    fig.savefig(path)
    return path
