"""The chunked, full-band Separator: a model's masks carried onto any rate, song by song, in bounded memory.

It knows no files and no model names: it is given a loaded model and reads samples through a
``read(start, stop)`` function (:mod:`asteroid_unet.files` gives it files, :meth:`Separator.separate`
in-memory waveforms).
"""
import math
import threading
import weakref
from collections import OrderedDict
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .audio import AudioError
from .fullband import fft_resample, interpolate_mask
from .grid import frame_grid, working_rate
from .memory import return_freed_memory
from .precision import DTYPES, resolve_precision
from .wiener import wiener

Reader = Callable[[int, int], torch.Tensor]
EDGE_FRAMES = 16  # model frames that STFT and resampling edge effects reach into a segment
CHUNK_SECONDS = 30.0  # default chunk core: under 1.3 GB for Spleeter 2stems on any length, at full speed
MASK_BLOCK_SECONDS = 10.0  # the full-band STFT, masking and inverse STFT go through a chunk in blocks this long
# The separator settings of a model that carries none of its own (UNet's ``separation``): those chosen for the
# default model, Spleeter 2stems, on musdb's 14 validation previews of MUSDB18-7 (benchmarks/quality.py --set
# "musdb18-7 valid"): one Wiener iteration lifts its mean vocals SDR by about 0.4 dB there, a second one loses
# most of it, and channel-swap averaging gains nothing for twice the network time. Every entry point (API,
# command line, web page, Asteroid and SpeechBrain) uses the model's own settings unless told otherwise.
# ``precision``: "auto" lets the machine choose (asteroid_unet.precision); a model may pin "float32".
DEFAULT_SETTINGS = {"wiener_iterations": 1, "tta": False, "full_band": True, "precision": "auto"}


class Separator:
    """Separates a signal at any rate in chunks, full band, with a model running at its own rate.

    Masks are computed at the model's rate and band, carried onto the STFT of the input at its
    own rate (see :func:`~asteroid_unet.fullband.interpolate_mask`). A mono model sees the
    downmix, and its masks apply to every channel; a model with ``audio_channels`` equal to the
    input's (Spleeter's stereo models) gives each channel its own masks. Full band, the last stem
    is the input minus the others, so the stems sum to the input; band-limited, every stem is
    masked and silent above the model's band (as Spleeter's own separator). Chunk borders lie on
    the model's patch grid and every chunk sees enough context on both sides, so the masks of
    chunked and whole separation agree (no seams), and memory is bounded by ``chunk_seconds``
    whatever the input's length. A rate whose frame grid would be costly (one sharing few factors with
    the model's, such as 44,101 Hz) is taken to be the nearest rate with a cheap grid, :attr:`grid_rate`
    (:func:`~asteroid_unet.grid.working_rate`): the samples and stems keep their own rate, and the work
    scales with the song's samples at any rate.

    With ``wiener_iterations`` the masks are refined by sigsep's multichannel Wiener filter (norbert's,
    as Spleeter's ``MWF=True``, in torch on ``device``: :func:`~asteroid_unet.wiener.wiener`): each
    target's spectrogram estimate is the network's own output (its sigmoid mask, before any ratio)
    times the mix magnitude, and the filter takes the channels' spatial covariances into account.
    It runs on the full-band STFT of each block of ``MASK_BLOCK_SECONDS`` of a chunk, whose
    covariances it estimates, so its stems depend slightly on ``chunk_seconds``. With ``tta``, a
    stereo model's network outputs are averaged with those of the channel-swapped input (swapped back).

    Args:
        model (UNet): the model; it is left as it is (mode, device): the separator runs a copy
            in eval mode on ``device`` (:func:`separator_for` reuses one per model, rate and settings).
        sample_rate (int): rate of the signals to separate, at least 1000 Hz.
        chunk_seconds (float): core length of a chunk, rounded to whole patch hops. Default 30.
        device (str): ``"cpu"`` or ``"cuda"``. Default: the model's device.
        precision (str): the U-Net's number format: ``"auto"`` (the model's own if it pins one, else
            bfloat16 where ``device`` runs it natively, float16 on a GPU without it, float32 on
            other CPUs: :func:`~asteroid_unet.precision.resolve_precision`), ``"float32"``,
            ``"bfloat16"`` or ``"float16"``. The STFTs, masks and Wiener filter stay float32.
            Default auto; :attr:`precision` is the one chosen.
        full_band (bool): carry the masks above the model's band (else silence it).
        wiener_iterations (int): EM iterations of the Wiener filter; 0: ratio masks only.
        tta (bool): average a stereo model's outputs with those of the channel-swapped input.

        ``full_band``, ``wiener_iterations`` and ``tta`` default (None) to the model's own settings,
        :func:`model_settings`.
    """

    def __init__(
        self,
        model,
        sample_rate: int,
        chunk_seconds: float = CHUNK_SECONDS,
        device: Optional[str] = None,
        precision: str = "auto",
        full_band: Optional[bool] = None,
        wiener_iterations: Optional[int] = None,
        tta: Optional[bool] = None,
    ):
        own = model_settings(model)
        full_band = own["full_band"] if full_band is None else full_band
        wiener_iterations = own["wiener_iterations"] if wiener_iterations is None else wiener_iterations
        tta = own["tta"] if tta is None else tta
        if int(wiener_iterations) < 0:
            raise ValueError(f"wiener_iterations must be 0 or more, got {wiener_iterations}")
        self.sample_rate = int(sample_rate)
        self.model_rate = int(model.sample_rate)
        hop_m, patch_hop = model.hop_length, model.patch_hop
        # The rate the samples are taken to be at: their own, or the nearest one with a cheap frame grid.
        self.grid_rate = working_rate(self.sample_rate, self.model_rate, hop_m, patch_hop)
        self.wiener_iterations = int(wiener_iterations)
        self.tta = bool(tta) and model.audio_channels == 2
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.precision = resolve_precision(precision, self.device, own["precision"])
        self.model = model.for_inference(DTYPES[self.precision]).to(self.device)
        self.full_band = bool(full_band)
        # Model frames per whole number of input samples, chunk borders (whole patch hops on that grid)
        # and the full-band STFT, whose hop divides that step so that every border lies on a frame.
        grid = frame_grid(self.grid_rate, self.model_rate, hop_m, patch_hop)
        self.frame_step = grid.frame_step
        self.unit = self.samples(grid.unit_frames)
        self.chunk = max(1, round(chunk_seconds * self.sample_rate / self.unit)) * self.unit
        # Context: the patches covering a chunk's first frame start up to patch_frames - patch_hop frames
        # earlier; 16 more frames keep STFT and resampling edge effects away from them.
        lead = model.patch_frames - patch_hop + EDGE_FRAMES
        self.margin = self.samples(math.ceil(lead / self.frame_step) * self.frame_step)
        # After a chunk: the few frames whose masks reach its last samples, the whole patches covering
        # them, and 16 frames more, so that those patches are exact and the next chunk reuses them.
        self.margin_after = self.samples(math.ceil((model.patch_frames + EDGE_FRAMES) / self.frame_step) * self.frame_step)
        self.n_fft, self.hop = grid.n_fft, grid.hop
        self.window = torch.hann_window(self.n_fft, device=self.device)
        # Zeros before the song as the model sees them: causal framing pads with zeros, centred reflects.
        self.pad_mode = "reflect" if model.framing == "center" else "constant"
        step = self.grid_rate // math.gcd(self.grid_rate, self.model_rate)
        self.guard = math.ceil(0.5 * self.grid_rate / step) * step
        self.names = stem_names(model)

    def samples(self, model_frames: int) -> int:
        """Input samples spanned by ``model_frames`` model hops (a multiple of ``frame_step``)."""
        return model_frames * self.model.hop_length * self.grid_rate // self.model_rate

    def frame(self, sample: int) -> int:
        """The model frame (hop) in which input sample ``sample`` lies."""
        return sample * self.model_rate // (self.model.hop_length * self.grid_rate)

    def per_channel(self, x: torch.Tensor) -> bool:
        """Whether the model sees and masks each channel of ``x`` ``(channels, time)`` on its own (a
        stereo model on input of its channel count); else it sees the downmix."""
        return self.model.audio_channels > 1 and x.shape[0] == self.model.audio_channels

    def plan(self, n_samples: int) -> List["Chunk"]:
        """The chunks of a song of ``n_samples`` samples, in order."""
        step = self.samples(self.frame_step)
        chunks = []
        for start in range(0, n_samples, self.chunk):
            stop = min(start + self.chunk, n_samples)
            seg_start = max(0, start - self.margin)
            seg_stop = min(n_samples, stop + self.margin_after)
            seg_len = math.ceil((seg_stop - seg_start) / step) * step
            first_frame = self.frame(seg_start)
            # Frames untouched by this segment's own borders (the song's borders are the real ones).
            exact = (first_frame + EDGE_FRAMES if seg_start > 0 else -math.inf,
                     first_frame + seg_len // step * self.frame_step - EDGE_FRAMES if seg_stop < n_samples else math.inf)
            need = (self.frame(start) - EDGE_FRAMES, self.frame(stop) + EDGE_FRAMES)  # frames whose masks reach the core
            keep_from = self.frame(stop - self.margin) - self.model.patch_frames  # where the next segment's patches start
            chunks.append(Chunk(start, stop, seg_start, seg_stop, seg_len, need, exact, keep_from))
        return chunks

    def iter_chunks(self, read: Reader, n_samples: int) -> Iterator[Tuple[int, Dict[str, torch.Tensor]]]:
        """Yield ``(start, stems)`` for consecutive chunks; stems are ``(channels, length)`` on the CPU."""
        song = SongPass(self, read, n_samples)
        for chunk in song.chunks:
            pending = song.prepare(chunk)
            stems = song.finish(pending, self.patch_masks([pending.todo])[0])
            del pending  # not held while the next chunk is read
            yield chunk.start, stems
            del stems

    def separate(self, waveform: Union[torch.Tensor, np.ndarray]) -> Dict[str, torch.Tensor]:
        """Stems ``{name: tensor}`` of an in-memory waveform ``(time,)`` or ``(channels, time)`` at
        :attr:`sample_rate`, each shaped like it (float32 unless the input is another float type); the
        memory the separation freed goes back to the system."""
        wav = torch.as_tensor(np.asarray(waveform) if not isinstance(waveform, torch.Tensor) else waveform)
        if wav.ndim not in (1, 2):
            raise ValueError(f"waveform must be (time,) or (channels, time), got shape {tuple(wav.shape)}")
        x = wav.reshape(1 if wav.ndim == 1 else wav.shape[0], wav.shape[-1]).float()
        n = x.shape[-1]

        def read(start: int, stop: int) -> torch.Tensor:
            out = x.new_zeros(x.shape[0], stop - start)
            lo, hi = max(start, 0), min(stop, n)
            out[:, lo - start : hi - start] = x[:, lo:hi]
            return out

        parts: Dict[str, list] = {name: [] for name in self.names}
        for _, stems in self.iter_chunks(read, n):
            for name, stem in stems.items():
                parts[name].append(stem)
        dtype = wav.dtype if wav.is_floating_point() else torch.float32
        stems = {name: (torch.cat(p, -1) if p else x.new_zeros(x.shape)).reshape(wav.shape).to(dtype)
                 for name, p in parts.items()}
        del parts
        return_freed_memory()
        return stems

    @torch.inference_mode()
    def patch_masks(self, todo: Sequence[torch.Tensor], per_pass: Optional[int] = None) -> List[torch.Tensor]:
        """:meth:`UNet.patch_masks` of the patches of several songs' chunks (:attr:`PendingChunk.todo`).

        With ``per_pass``, the patches of all of them go through the network together, ``per_pass``
        per call (a GPU's batch). Without it, each chunk's go in calls of the model's ``patch_batch``
        of their own, as for one song alone: on the CPU a call's batch size can change the results'
        last bit, so this keeps the bytes of one file at a time."""
        if per_pass is None:
            return [self._masks_of(patches, self.model.patch_batch) for patches in todo]
        masks = self._masks_of(torch.cat(list(todo)), per_pass)
        return list(masks.split([patches.shape[0] for patches in todo]))

    def _masks_of(self, patches: torch.Tensor, per_call: int) -> torch.Tensor:
        if not patches.shape[0]:
            return patches
        return torch.cat([self._patch_masks(p) for p in patches.split(per_call)])

    def _patch_masks(self, patches: torch.Tensor) -> torch.Tensor:
        """The model's masks of ``patches``; for the Wiener filter its raw outputs; with ``tta``
        averaged with those of the channel-swapped patches."""
        model = self.model
        masks = model.network_masks if self.wiener_iterations else model.patch_masks
        out = masks(patches)
        if self.tta:  # a stereo model: channel axis 1 of the patches, 2 of the masks
            out = (out + masks(patches.flip(1)).flip(2)) / 2
        if self.wiener_iterations and model.audio_channels == 1:
            out = out[:, :, 0]
        return out

    @torch.inference_mode()
    def apply_masks(self, x: torch.Tensor, masks: torch.Tensor, skip: int, core: slice) -> Dict[str, torch.Tensor]:
        """Stems of the ``core`` samples (whole STFT hops) of a segment ``(channels, time)``, given the
        model's masks ``(n_targets, [channels,] n_bins, frames)`` of the segment from its frame ``skip``.

        The full-band STFT, masks and inverse STFT go through the core in blocks of
        ``MASK_BLOCK_SECONDS``, each with one window on either side."""
        per_channel = self.per_channel(x)
        if self.model.audio_channels > 1 and not per_channel:  # one mask for every channel: the mean over the model's
            masks = masks.mean(1)
        if self.wiener_iterations:
            if masks.shape[0] < len(self.names):  # one target: the rest of the mix is the other source
                masks = torch.cat([masks, 1 - masks])
        elif len(self.names) > 2 or masks.shape[0] == 2:  # several masks share the mix
            masks /= masks.sum(0, keepdim=True).clamp_min(1e-8)
        n_masked = len(self.names) - 1 if self.full_band or masks.shape[0] < len(self.names) else len(self.names)
        masked_names = self.names[:n_masked]

        def estimate(part: slice) -> List[torch.Tensor]:  # the Wiener filter needs every source
            if self.wiener_iterations:
                return self._wiener(x, masks, skip, part, per_channel, n_masked)
            return self._masked(x, masks[:n_masked], skip, part, per_channel)

        stems = {name: x.new_empty(x.shape[0], core.stop - core.start) for name in masked_names}
        block = max(1, round(MASK_BLOCK_SECONDS * self.sample_rate / self.hop)) * self.hop
        for start in range(core.start, core.stop, block):  # blocks of whole hops bound the STFTs' memory
            part = slice(start, min(start + block, core.stop))
            for name, stem in zip(masked_names, estimate(part)):
                stems[name][:, part.start - core.start : part.stop - core.start] = stem
        if n_masked < len(self.names):
            stems[self.names[-1]] = x[:, core] - sum(stems.values())
        return stems

    def _span(self, x: torch.Tensor, part: slice) -> Tuple[int, int]:
        """``(lo, hi)``: the samples of ``x`` whose STFT frames reach into ``part``."""
        reach = math.ceil(self.n_fft / self.hop) * self.hop
        return max(0, part.start - reach), min(x.shape[-1], part.stop + reach)

    def _full_masks(self, masks: torch.Tensor, skip: int, lo: int, span_length: int) -> List[torch.Tensor]:
        """Each of ``masks`` on the full-band STFT grid of the samples from ``lo`` (``span_length`` of them)."""
        model = self.model
        samples_per_frame = model.hop_length * self.grid_rate / self.model_rate
        return [
            interpolate_mask(
                mask,
                model_bin_hz=self.model_rate / model.n_fft,
                model_frame_s=model.hop_length / self.model_rate,
                n_freqs=self.n_fft // 2 + 1,
                bin_hz=self.grid_rate / self.n_fft,
                n_frames=1 + span_length // self.hop,  # torch.stft's frame count with center=True
                frame_s=self.hop / self.grid_rate,
                offset_frames=skip + model.first_frame_center / model.hop_length - lo / samples_per_frame,
                band_limited=not self.full_band,
            )
            for mask in masks
        ]

    def _stft(self, signal: torch.Tensor) -> torch.Tensor:
        return torch.stft(signal, self.n_fft, self.hop, window=self.window, center=True, pad_mode=self.pad_mode,
                          return_complex=True)

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, length=length)

    def _masked(self, x: torch.Tensor, masks: torch.Tensor, skip: int, part: slice, per_channel: bool) -> List[torch.Tensor]:
        """The ``part`` samples of ``x`` under each of ``masks``, through a full-band STFT of the part and
        the frames reaching into it: frames near the span's own borders stay outside the part."""
        lo, hi = self._span(x, part)
        span = x[:, lo:hi]
        full_masks = self._full_masks(masks, skip, lo, span.shape[-1])
        outs = [x.new_empty(x.shape[0], part.stop - part.start) for _ in full_masks]
        for channel in range(x.shape[0]):  # one channel at a time bounds the STFT's memory
            spec = self._stft(span[channel])
            for i, (out, full) in enumerate(zip(outs, full_masks)):
                masked = spec if i == len(outs) - 1 else spec.clone()  # the last mask may reuse spec
                out[channel] = self._istft(masked.mul_(full[channel] if per_channel else full),
                                           span.shape[-1])[part.start - lo : part.stop - lo]
        return outs

    def _wiener(self, x: torch.Tensor, masks: torch.Tensor, skip: int, part: slice, per_channel: bool,
                keep: int) -> List[torch.Tensor]:
        """The ``part`` samples of the first ``keep`` sources, Wiener-filtered (:func:`~asteroid_unet.wiener.wiener`)
        on the full-band STFT of the samples reaching into the part; each source's spectrogram
        estimate is its mask times the mix magnitude."""
        lo, hi = self._span(x, part)
        span = x[:, lo:hi]
        spec = torch.stack([self._stft(channel) for channel in span])  # (channels, freqs, frames)
        full = torch.stack(self._full_masks(masks, skip, lo, span.shape[-1]))  # (sources, [channels,] freqs, frames)
        estimates = (full if per_channel else full.unsqueeze(1)) * stft_magnitude(spec)
        filtered = wiener(estimates, spec, self.wiener_iterations, keep)  # (keep, channels, freqs, frames)
        return [self._istft(source, span.shape[-1])[:, part.start - lo : part.stop - lo] for source in filtered]


class Chunk(NamedTuple):
    """A chunk of a song: its core ``[start, stop)`` in samples, the segment ``[seg_start, seg_stop)`` read
    around it (``seg_len`` whole steps, zeros after ``seg_stop``), and global model frames: those whose
    masks reach the core (``need``), those no segment border touches (``exact``), and where the patches
    kept for the next chunk start (``keep_from``)."""

    start: int
    stop: int
    seg_start: int
    seg_stop: int
    seg_len: int
    need: Tuple[float, float]
    exact: Tuple[float, float]
    keep_from: float


class PendingChunk(NamedTuple):
    """A chunk read and cut into patches, waiting for the masks of the patches in ``todo``."""

    chunk: Chunk
    x: torch.Tensor
    skip: int
    n_frames: int
    starts: List[int]
    needed: List[bool]
    todo: torch.Tensor


class SongPass:
    """One song on its way through a :class:`Separator`, chunk by chunk: its reader, its chunks and
    the exact patch masks each chunk hands to the next, so each patch goes through the network once.

    Several songs share one separator (one copy of the model) and, through
    :meth:`Separator.patch_masks`, one network pass per step: :meth:`prepare` a chunk of each,
    compute the masks of all their ``todo`` patches together, then :meth:`finish` each chunk.
    """

    def __init__(self, separator: Separator, read: Reader, n_samples: int):
        self.separator = separator
        self.read = read
        self.chunks = separator.plan(n_samples)
        self.reuse: Dict[int, torch.Tensor] = {}  # exact patch masks, by first global frame, for the next chunk

    @torch.inference_mode()
    def prepare(self, chunk: Chunk) -> PendingChunk:
        """Read the chunk's segment; its ``todo`` patches are those reaching the core that no earlier
        chunk computed exactly. Patches lie on a grid of ``patch_hop`` frames from the song's start."""
        sep, model = self.separator, self.separator.model
        x = self.read(chunk.seg_start, chunk.seg_start + chunk.seg_len).to(sep.device)
        x[:, chunk.seg_stop - chunk.seg_start :] = 0  # the track ends here: same padding whole or chunked
        if not torch.isfinite(x.sum(0)).all():  # NaN or Inf in any channel
            raise AudioError("contains NaN or Inf samples")
        first_frame = sep.frame(chunk.seg_start)
        skip = -first_frame % model.patch_hop
        channels = model.audio_channels
        net_input = x if sep.per_channel(x) else x.mean(0, keepdim=True).expand(channels, -1)
        net_input = fft_resample(net_input, sep.grid_rate, sep.model_rate, sep.guard)
        magnitude = torch.cat([model.magnitude(row) for row in net_input.split(1)])[..., skip:]  # a row at a time: less memory
        patches = model.magnitude_patches(magnitude[None] if channels > 1 else magnitude)
        first = first_frame + skip - (model.patch_frames - model.patch_hop)
        starts = [first + i * model.patch_hop for i in range(patches.shape[0])]
        need = chunk.need
        needed = [need[0] < g + model.patch_frames and g < need[1] for g in starts]
        todo = [i for i, g in enumerate(starts) if needed[i] and g not in self.reuse]
        return PendingChunk(chunk, x, skip, magnitude.shape[-1], starts, needed, patches[todo])

    @torch.inference_mode()
    def finish(self, pending: PendingChunk, computed: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Stems ``(channels, length)`` of the chunk's core, on the CPU, given the masks ``computed``
        of its ``todo`` patches. Patches not needed are zeros; exact ones are kept for the next chunk
        from ``keep_from``. Exact patches saw no segment border, so a reused patch is the one a
        whole-song pass computes, even where this segment's own copy of it would not be."""
        sep, model = self.separator, self.separator.model
        chunk, starts = pending.chunk, pending.starts
        masks = iter(computed)
        found = {g: self.reuse[g] if g in self.reuse else next(masks) for g, used in zip(starts, pending.needed) if used}
        unused = torch.zeros_like(next(iter(found.values())))  # the core always needs a patch
        exact = chunk.exact
        exact_here = {g for g in starts if exact[0] <= g and g + model.patch_frames <= exact[1]}
        self.reuse = {g: m for g, m in found.items() if g >= chunk.keep_from and (g in exact_here or g in self.reuse)}
        all_masks = model.masks_from_patches(torch.stack([found.get(g, unused) for g in starts]), pending.n_frames)
        core = slice(chunk.start - chunk.seg_start, chunk.stop - chunk.seg_start)
        stems = sep.apply_masks(pending.x, all_masks[0].float(), pending.skip, core)
        return {name: s.cpu() for name, s in stems.items()}


def model_settings(model) -> Dict[str, object]:
    """The separator settings a model was validated with: its own (``UNet.separation``, saved with it)
    over :data:`DEFAULT_SETTINGS`."""
    return {**DEFAULT_SETTINGS, **getattr(model, "separation", {})}


def stft_magnitude(spec: torch.Tensor) -> torch.Tensor:
    """``|spec|`` of a complex STFT from its real parts (torch's complex ``abs`` is several times slower on a CPU)."""
    parts = torch.view_as_real(spec)
    return torch.addcmul(parts[..., 0].square(), parts[..., 1], parts[..., 1]).sqrt_()


def stem_names(model) -> List[str]:
    """Output stems: the model's targets, plus the residual for a single-target model."""
    if len(model.targets) > 1:
        return list(model.targets)
    return [model.targets[0], "accompaniment" if model.targets[0] == "vocals" else "residual"]




SEPARATOR_CACHE = 4  # separators kept; each holds its model's inference copy (about 45 MB for the paper model)
_SEPARATORS: "OrderedDict" = OrderedDict()  # (id(model), rate, settings) -> (weakref(model), state, Separator)
_separators_lock = threading.Lock()


def separator_for(model, sample_rate: int, **settings) -> Separator:
    """A :class:`Separator` of ``model`` at ``sample_rate`` with ``settings`` (its other arguments): the
    same one for the same model, rate and settings (``precision`` as resolved on its device), while the
    model's weights stay as they are, so the inference copy is built once, not per file or call. The :data:`SEPARATOR_CACHE` most recently
    used are kept, so memory stays flat over many rates and settings."""
    state = tuple((t.data_ptr(), t._version) for t in model.state_dict().values())  # changed by training or loading
    device = torch.device(settings.get("device") or next(model.parameters()).device)
    settings["precision"] = resolve_precision(settings.get("precision", "auto"), device, model_settings(model)["precision"])
    key = (id(model), int(sample_rate), tuple(sorted(settings.items())))
    with _separators_lock:
        entry = _SEPARATORS.get(key)
        if entry is None or entry[0]() is not model or entry[1] != state:
            # Another model that had this id, or these weights before they changed:
            for stale in [k for k, (ref, old, _) in _SEPARATORS.items() if k[0] == id(model) and (ref() is not model
                          or old != state)]:
                del _SEPARATORS[stale]
            entry = _SEPARATORS[key] = (weakref.ref(model), state, Separator(model, sample_rate, **settings))
        _SEPARATORS.move_to_end(key)
        while len(_SEPARATORS) > SEPARATOR_CACHE:
            _SEPARATORS.popitem(last=False)
        return entry[2]
