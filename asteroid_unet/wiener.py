"""sigsep's multichannel Wiener filter (``norbert.wiener``, the filter of Spleeter's ``MWF=True``) in torch.

The same algorithm and regularisation as norbert 0.2.1 with its defaults (a soft-mask start, then EM
iterations of the local Gaussian model; epsilon is the machine epsilon of the mixture's real dtype),
computed on the tensors' own device and vectorized over frames and frequencies instead of one frame
at a time. Frequency bins are independent (each has its own spatial covariances), so the filter runs
through slabs of :data:`SLAB_BINS` bins whose tensors stay in a CPU's cache. Complex values are
carried as pairs of real tensors (:class:`Complex`): torch's complex kernels are many times slower
than its real ones on a CPU, where the filter also runs on one thread (:func:`single_threaded`).
Covariance matrices are Hermitian: only their upper triangle is computed, with real diagonals.
"""
import contextlib
from typing import Iterator, List, Optional

import torch

SLAB_BINS = 128  # frequency bins filtered together: about 10 s of frames of them stay in cache


class Complex:
    """A complex tensor as its real and imaginary parts, real tensors of one shape (``im`` None: real)."""

    __slots__ = ("re", "im")

    def __init__(self, re: torch.Tensor, im: Optional[torch.Tensor] = None):
        self.re, self.im = re, im

    @classmethod
    def of(cls, z: torch.Tensor) -> "Complex":
        """The parts of a torch complex tensor, each contiguous."""
        parts = torch.view_as_real(z)
        return cls(parts[..., 0].contiguous(), parts[..., 1].contiguous())

    def __getitem__(self, index) -> "Complex":
        return Complex(self.re[index], None if self.im is None else self.im[index])

    def __mul__(self, other: "Complex") -> "Complex":
        if self.im is None or other.im is None:
            if self.im is None and other.im is None:
                return Complex(self.re * other.re)
            real, cplx = (self, other) if self.im is None else (other, self)
            return Complex(cplx.re * real.re, cplx.im * real.re)
        return Complex(self.re * other.re - self.im * other.im, self.re * other.im + self.im * other.re)

    def __add__(self, other: "Complex") -> "Complex":
        if self.im is None and other.im is None:
            return Complex(self.re + other.re)
        return Complex(self.re + other.re, self.im if other.im is None else other.im if self.im is None
                       else self.im + other.im)

    def conj(self) -> "Complex":
        return Complex(self.re, None if self.im is None else -self.im)

    def sum(self, dim: int, keepdim: bool = False) -> "Complex":
        return Complex(self.re.sum(dim, keepdim), None if self.im is None else self.im.sum(dim, keepdim))

    def squared_magnitude(self) -> torch.Tensor:
        return self.re.square() if self.im is None else self.re.square() + self.im.square()

    def torch(self) -> torch.Tensor:
        """As a torch complex tensor."""
        return torch.complex(self.re, torch.zeros_like(self.re) if self.im is None else self.im)


Matrix = List[List[Complex]]  # [row][column]; the lower triangle holds conjugates


def wiener(estimates: torch.Tensor, mix: torch.Tensor, iterations: int = 1, keep: Optional[int] = None,
           eps: Optional[float] = None) -> torch.Tensor:
    """Sources separated from ``mix`` by a multichannel Wiener filter built on ``estimates``.

    Args:
        estimates (torch.Tensor): non-negative magnitude estimates of the sources,
            ``(nb_sources, nb_channels or 1, nb_bins, nb_frames)``, real.
        mix (torch.Tensor): the mixture's STFT ``(nb_channels, nb_bins, nb_frames)``, complex.
        iterations (int): EM iterations; 0 gives the soft-mask start. Default 1.
        keep (int): how many sources to return, the first ones (every source still shapes the
            filter). Default: all.
        eps (float): regularisation: the power of a white noise the filter takes out, and the
            soft mask's floor. Default: the machine epsilon of ``mix``'s real dtype, as norbert.

    Returns:
        torch.Tensor: the first ``keep`` sources' STFTs ``(keep, nb_channels, nb_bins, nb_frames)``,
        complex, ``mix``'s dtype.
    """
    with single_threaded(mix.device):
        return _wiener(estimates, mix, iterations, estimates.shape[0] if keep is None else keep,
                       torch.finfo(mix.real.dtype).eps if eps is None else eps)


@contextlib.contextmanager
def single_threaded(device: torch.device) -> Iterator[None]:
    """On a CPU, torch's intra-op threads set to one inside the block, then given back.

    The filter is some hundred small operations per slab; with several threads each of them waits
    for all threads, and on a busy machine (more runnable threads than cores) those waits cost many
    times the work: a minute of stereo took 30 s in the filter with 2 threads and 1.3 to 5 s with
    one, on 2 shared cores. One thread also makes its sums independent of the thread count.
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _wiener(estimates: torch.Tensor, mix: torch.Tensor, iterations: int, keep: int, eps: float) -> torch.Tensor:
    """:func:`wiener` with every argument given."""
    # Scaled down for numerical stability, as norbert does before its EM iterations.
    scale = max(1.0, Complex.of(mix).squared_magnitude().max().item() ** 0.5 / 10) if iterations else 1.0
    out = torch.view_as_real(mix.new_empty(keep, *mix.shape))
    for lo in range(0, mix.shape[1], SLAB_BINS):
        bins = slice(lo, lo + SLAB_BINS)
        x = Complex.of(mix[:, bins] / scale if scale != 1 else mix[:, bins])  # (channels, bins, frames)
        v = estimates[:, :, bins].to(x.re.dtype)
        y = x * Complex(v / (v.sum(0) + eps))  # the soft mask: (sources, channels, bins, frames)
        for iteration in range(iterations):
            y = em_step(y, x, eps, keep if iteration == iterations - 1 else None)
        out[:, :, bins, :, 0] = y.re[:keep] * scale
        out[:, :, bins, :, 1] = y.im[:keep] * scale
    return torch.view_as_complex(out)


def em_step(y: Complex, x: Complex, eps: float, keep: Optional[int] = None) -> Complex:
    """One EM iteration: each source's power ``(nb_sources, nb_bins, nb_frames)`` and spatial covariance
    per bin from the current estimates ``y`` ``(nb_sources, nb_channels, nb_bins, nb_frames)``, then
    the posterior means ``v_j R_j C_xx^-1 x`` of the first ``keep`` sources (default all) given the
    mixture ``x`` ``(nb_channels, nb_bins, nb_frames)``."""
    channels = x.re.shape[0]
    energy = y.squared_magnitude()  # (sources, channels, bins, frames)
    power = energy.mean(1)
    weight = power.sum(-1, keepdim=True) + eps  # (sources, bins, 1)
    inv_weight = Complex(1.0 / weight)

    def spatial_entry(a: int, b: int) -> Complex:  # (sources, bins, 1); real on the diagonal
        if a == b:
            return Complex(energy[:, a].sum(-1, keepdim=True) / weight)
        return (y[:, a] * y[:, b].conj()).sum(-1, keepdim=True) * inv_weight

    spatial = hermitian(channels, spatial_entry)
    v = Complex(power)

    def mix_entry(a: int, b: int) -> Complex:  # (bins, frames): sum_j v_j R_j (+ sqrt(eps) I)
        total = (spatial[a][b] * v).sum(0)
        return Complex(total.re + eps ** 0.5) if a == b else total

    inverse = invert(hermitian(channels, mix_entry), eps)
    z = [sum_of_products(inverse[a], x) for a in range(channels)]  # C_xx^-1 x, each (bins, frames)
    n = y.re.shape[0] if keep is None else keep
    out = [sum_of_products([spatial[a][b][:n] for b in range(channels)], z) * v[:n] for a in range(channels)]
    return Complex(torch.stack([o.re for o in out], 1), torch.stack([o.im for o in out], 1))


def sum_of_products(coefficients: List[Complex], vectors) -> Complex:
    """``sum_b coefficients[b] * vectors[b]``."""
    total = coefficients[0] * vectors[0]
    for b in range(1, len(coefficients)):
        total = total + coefficients[b] * vectors[b]
    return total


def hermitian(channels: int, entry) -> Matrix:
    """A Hermitian matrix: ``entry(a, b)`` for ``a <= b``, conjugates below the diagonal."""
    rows: Matrix = [[None] * channels for _ in range(channels)]
    for a in range(channels):
        for b in range(a, channels):
            rows[a][b] = entry(a, b)
            rows[b][a] = rows[a][b].conj() if b != a else rows[a][b]
    return rows


def invert(matrix: Matrix, eps: float) -> Matrix:
    """Inverses of Hermitian matrices with real diagonals, as norbert: ``1 / (m + eps)`` for 1 x 1,
    the adjugate over the determinant for 2 x 2, else the pseudo-inverse with relative cutoff ``eps``."""
    channels = len(matrix)
    if channels == 1:
        return [[Complex(1.0 / (matrix[0][0].re + eps))]]
    if channels == 2:
        (m00, m01), (_, m11) = matrix
        inv_det = 1.0 / (m00.re * m11.re - m01.squared_magnitude())
        off = m01 * Complex(-inv_det)
        return [[Complex(m11.re * inv_det), off], [off.conj(), Complex(m00.re * inv_det)]]
    stacked = torch.stack([torch.stack([m.torch() for m in row], -1) for row in matrix], -2)
    inverse = torch.linalg.pinv(stacked, rtol=eps)
    return [[Complex.of(inverse[..., a, b]) for b in range(channels)] for a in range(channels)]
