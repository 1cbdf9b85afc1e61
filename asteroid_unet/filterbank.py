"""Asteroid's STFT filterbank, built without its n_fft x n_fft temporaries."""
import numpy as np
import torch
from asteroid_filterbanks import TorchSTFTFB
from asteroid_filterbanks.enc_dec import Filterbank

ROWS_PER_BLOCK = 256


class STFTFilterbank(TorchSTFTFB):
    """:class:`asteroid_filterbanks.TorchSTFTFB` (``n_filters == kernel_size``, the only case it allows)
    with the same DFT filters, computed a block of frequencies at a time.

    ``STFTFB`` takes the FFT of an ``n_fft x n_fft`` identity matrix in float64: over 500 MB of
    temporaries at ``n_fft`` 4096 (Spleeter's), which set the peak memory of loading a model.
    Here the filters are evaluated from their closed form, ``ROWS_PER_BLOCK`` frequencies at a time;
    they agree with ``STFTFB``'s to 1e-17.
    """

    def __init__(self, n_filters, kernel_size, stride=None, window=None, center=True, pad_mode="reflect",
                 normalized=False, onesided=True, sample_rate=8000.0):
        if n_filters != kernel_size:
            raise NotImplementedError("Cannot set `n_filters!=kernel_size` in TorchSTFTFB, untested.")
        if n_filters % 2:
            raise ValueError(f"n_filters must be even, got {n_filters}")
        if normalized or not onesided:
            raise NotImplementedError
        Filterbank.__init__(self, n_filters, kernel_size, stride=stride, sample_rate=sample_rate)
        window = np.hanning(kernel_size + 1)[:-1] ** 0.5 if window is None else np.asarray(window)
        if window.size != kernel_size:
            raise AssertionError(f"Expected window of size {kernel_size}. Received {window.size} instead.")
        self.window, self.center, self.pad_mode, self.normalize = window, center, pad_mode, normalized
        self.cutoff = n_filters // 2 + 1
        self.n_feats_out = 2 * self.cutoff
        self.register_buffer("_filters", self._dft_filters())
        self.register_buffer("torch_window", torch.from_numpy(window).float())

    def _dft_filters(self) -> torch.Tensor:
        """``(2 * cutoff, 1, n_filters)``: windowed real then imaginary DFT rows, scaled as ``STFTFB``'s."""
        n, cutoff = self.n_filters, self.cutoff
        scale = 0.5 * np.sqrt(self.kernel_size * n / self.stride)
        times = np.arange(n)
        filters = torch.empty(2 * cutoff, 1, n)
        for start in range(0, cutoff, ROWS_PER_BLOCK):
            freqs = np.arange(start, min(start + ROWS_PER_BLOCK, cutoff))
            dft = np.exp(-2j * np.pi * (np.outer(freqs, times) % n) / n) / scale
            real = dft.real
            real[(freqs == 0) | (freqs == n // 2)] /= np.sqrt(2)  # DC and Nyquist counted once
            filters[start : start + len(freqs), 0] = torch.from_numpy(real * self.window)
            filters[cutoff + start : cutoff + start + len(freqs), 0] = torch.from_numpy(dft.imag * self.window)
        return filters
