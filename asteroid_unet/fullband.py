"""Carry the model's band-limited masks onto a full-band STFT at the input's own rate."""
import math

import scipy.fft
import torch


def fft_resample(x: torch.Tensor, orig_sr: int, new_sr: int, guard: int) -> torch.Tensor:
    """Band-limited resampling of ``(..., time)`` by FFT; ``time * new_sr / orig_sr`` must be whole.

    ``2 * guard`` trailing zeros (in input samples, also whole at the new rate) keep the FFT's
    wrap-around from folding one end of the signal onto the other. On the CPU the FFTs are
    scipy's single-threaded ones: torch's CPU FFT rounds differently with the thread count,
    and the same input must give the same bits in any process (``--jobs``, Ray actors).
    """
    if orig_sr == new_sr:
        return x
    n_in = x.shape[-1] + 2 * guard
    n_out = n_in * new_sr // orig_sr
    keep = min(n_in // 2 + 1, n_out // 2 + 1)
    length = x.shape[-1] * new_sr // orig_sr
    if x.device.type == "cpu":
        spec = scipy.fft.rfft(x.numpy(), n=n_in)[..., :keep]
        out = scipy.fft.irfft(spec, n_out)[..., :length] * (n_out / n_in)
        return torch.from_numpy(out)
    spec = torch.fft.rfft(x, n=n_in)
    out_spec = spec.new_zeros(*spec.shape[:-1], n_out // 2 + 1)
    out_spec[..., :keep] = spec[..., :keep]
    return torch.fft.irfft(out_spec, n_out)[..., :length] * (n_out / n_in)


def interpolate_mask(
    mask: torch.Tensor,
    model_bin_hz: float,
    model_frame_s: float,
    n_freqs: int,
    bin_hz: float,
    n_frames: int,
    frame_s: float,
    offset_frames: float = 0,
    band_limited: bool = False,
) -> torch.Tensor:
    """Map a model-rate mask ``(..., n_bins, model_frames)`` onto a full-band grid ``(..., n_freqs, n_frames)``.

    Inside the model's band the mask is interpolated linearly in frequency and time. Above
    it (the model sees 0 to ``n_bins * model_bin_hz`` Hz) each frame takes the mean of the
    mask over the top octave of the model's band, so what the model hears of a source's
    upper harmonics decides how much of the high band goes to that source.
    ``band_limited`` silences everything above the model's band instead.
    Mask frame 0 is model frame ``offset_frames`` of the signal (times are clamped to the mask),
    a model frame lying where its centre lies.
    """
    n_bins = mask.shape[-2]
    if band_limited:
        high = mask.new_zeros(*mask.shape[:-2], 1, mask.shape[-1])
    else:
        high = mask[..., n_bins // 2 :, :].mean(dim=-2, keepdim=True)
    if bin_hz == model_bin_hz and frame_s == model_frame_s and float(offset_frames).is_integer():
        return _same_grid(mask, high, n_freqs, n_frames, int(offset_frames))
    extended = torch.cat([mask, high], dim=-2)  # row n_bins is the high band
    q = torch.arange(n_freqs, dtype=torch.float64) * (bin_hz / model_bin_hz)
    in_band = q <= n_bins - 1
    lo = torch.where(in_band, q.floor(), torch.full_like(q, n_bins)).long()
    hi = torch.where(in_band, (lo + 1).clamp(max=n_bins - 1), lo)
    w = torch.where(in_band, q - q.floor(), torch.zeros_like(q)).to(mask.dtype).to(mask.device)[:, None]
    lo, hi = lo.to(mask.device), hi.to(mask.device)
    by_freq = torch.lerp(extended.index_select(-2, lo), extended.index_select(-2, hi), w)
    t = torch.arange(n_frames, dtype=torch.float64) * (frame_s / model_frame_s) - offset_frames
    t = t.clamp(min=0, max=mask.shape[-1] - 1)
    t_lo = t.floor().long()
    t_hi = (t_lo + 1).clamp(max=mask.shape[-1] - 1)
    wt = (t - t.floor()).to(mask.dtype).to(mask.device)
    t_lo, t_hi = t_lo.to(mask.device), t_hi.to(mask.device)
    return torch.lerp(by_freq.index_select(-1, t_lo), by_freq.index_select(-1, t_hi), wt)


def stft_size(step: int, sample_rate: int) -> tuple:
    """``(n_fft, hop)`` of the full-band STFT: a power-of-two window near 93 ms (4096 at 44.1 kHz)
    and the largest hop up to half of it that divides ``step`` (so segment borders fall on frames)."""
    n_fft = 2 ** round(math.log2(sample_rate * 4096 / 44100))
    divisors = set()
    for d in range(1, math.isqrt(step) + 1):
        if step % d == 0:
            divisors.update((d, step // d))
    return n_fft, max(d for d in divisors if d <= n_fft // 2)


def _same_grid(mask: torch.Tensor, high: torch.Tensor, n_freqs: int, n_frames: int, offset: int) -> torch.Tensor:
    """:func:`interpolate_mask` where both grids coincide: slices, no interpolation."""
    n_bins, last = mask.shape[-2], mask.shape[-1] - 1
    t = (torch.arange(n_frames, device=mask.device) - offset).clamp(0, last)
    if offset <= 0 and n_frames - 1 - offset <= last:  # the usual case: a plain slice in time
        mask, high = mask[..., -offset : n_frames - offset], high[..., -offset : n_frames - offset]
    else:
        mask, high = mask.index_select(-1, t), high.index_select(-1, t)
    return torch.cat([mask[..., : min(n_bins, n_freqs), :], high.expand(*high.shape[:-2], max(n_freqs - n_bins, 0), n_frames)], dim=-2)
