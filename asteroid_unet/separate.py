"""Full-band, chunked separation of waveforms and files: the user API."""
import math
import os
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .audio import OUTPUT_FORMATS, AtomicWriter, AudioError, AudioReader
from .fullband import fft_resample, interpolate_mask, stft_size
from .model import UNet
from .weights import load_model

Reader = Callable[[int, int], torch.Tensor]


class Separator:
    """Separates a signal at any rate in chunks, full band, with a model running at its own rate.

    Masks are computed on the mono downmix at the model's rate and band, carried onto the
    STFT of the input at its own rate (see :func:`~asteroid_unet.fullband.interpolate_mask`)
    and applied to every channel. The last stem is the input minus the others, so the stems
    sum to the input. Chunk borders lie on the model's patch grid and every chunk sees
    enough context on both sides, so chunked and whole separation agree (no seams), and
    memory is bounded by ``chunk_seconds`` whatever the input's length.

    Args:
        model (UNet): the model (moved to ``device``, eval mode).
        sample_rate (int): rate of the signals to separate.
        chunk_seconds (float): core length of a chunk, rounded to whole patch hops. Default 60.
        device (str): ``"cpu"`` or ``"cuda"``. Default: the model's device.
        precision (str): ``"float32"`` or ``"bfloat16"`` (autocast for the U-Net). Default float32.
    """

    def __init__(
        self,
        model: UNet,
        sample_rate: int,
        chunk_seconds: float = 60.0,
        device: Optional[str] = None,
        precision: str = "float32",
    ):
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be float32 or bfloat16, got {precision!r}")
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.model = model.to(self.device).for_inference()
        if self.device.type == "cuda":  # a GPU runs many patches per pass (the copy's setting only)
            self.model.patch_batch = max(self.model.patch_batch, 256)
        self.precision = precision
        self.sample_rate = int(sample_rate)
        self.model_rate = int(model.sample_rate)
        if self.sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        hop_m, patch_hop = model.hop_length, model.patch_hop
        # Model frames per whole number of input samples, and chunk borders: whole patch hops on that grid.
        self.frame_step = self.model_rate // math.gcd(hop_m * self.sample_rate, self.model_rate)
        unit_frames = patch_hop * (self.model_rate // math.gcd(patch_hop * hop_m * self.sample_rate, self.model_rate))
        self.unit = self.samples(unit_frames)
        self.chunk = max(1, round(chunk_seconds * self.sample_rate / self.unit)) * self.unit
        # Context: the patches covering a chunk's first frame start up to patch_frames - patch_hop frames
        # earlier; 16 more frames keep STFT and resampling edge effects away from them.
        lead = model.patch_frames - patch_hop + 16
        self.margin = self.samples(math.ceil(lead / self.frame_step) * self.frame_step)
        self.n_fft, self.hop = stft_size(self.samples(self.frame_step), self.sample_rate)  # every border on a frame
        self.window = torch.hann_window(self.n_fft, device=self.device)
        step = self.sample_rate // math.gcd(self.sample_rate, self.model_rate)
        self.guard = math.ceil(0.5 * self.sample_rate / step) * step
        self.names = stem_names(model)

    def samples(self, model_frames: int) -> int:
        """Input samples spanned by ``model_frames`` model hops (a multiple of ``frame_step``)."""
        return model_frames * self.model.hop_length * self.sample_rate // self.model_rate

    def plan(self, n_samples: int) -> List[Tuple[int, int, int, int]]:
        """``(start, stop, seg_start, seg_stop)`` per chunk: its core, and the segment read around it."""
        chunks = []
        for start in range(0, n_samples, self.chunk):
            stop = min(start + self.chunk, n_samples)
            chunks.append((start, stop, max(0, start - self.margin), min(n_samples, stop + self.margin)))
        return chunks

    def read_segment(self, read: Reader, seg_start: int, seg_stop: int) -> Tuple[torch.Tensor, int]:
        """The segment ``(channels, time)`` on the device, zero-padded to whole frame steps, and its first model frame."""
        step = self.samples(self.frame_step)
        seg_len = math.ceil((seg_stop - seg_start) / step) * step
        x = read(seg_start, seg_start + seg_len).to(self.device)
        x[:, seg_stop - seg_start :] = 0  # the track ends here: same padding whole or chunked
        return x, seg_start * self.model_rate // (self.model.hop_length * self.sample_rate)

    def iter_chunks(self, read: Reader, n_samples: int) -> Iterator[Tuple[int, Dict[str, torch.Tensor]]]:
        """Yield ``(start, stems)`` for consecutive chunks; stems are ``(channels, length)`` on the CPU."""
        for start, stop, seg_start, seg_stop in self.plan(n_samples):
            x, first_frame = self.read_segment(read, seg_start, seg_stop)
            magnitude, skip = self.magnitude(x, first_frame)
            (masks,) = self.masks([magnitude])
            stems = self.apply_masks(x, masks, skip, slice(start - seg_start, stop - seg_start))
            yield start, {name: s.cpu() for name, s in stems.items()}

    @torch.inference_mode()
    def magnitude(self, x: torch.Tensor, first_frame: int) -> Tuple[torch.Tensor, int]:
        """The model-rate magnitude ``(1, n_bins, frames)`` of a segment's downmix, from the first frame on
        the song's patch grid, and how many frames were skipped to reach it."""
        model = self.model
        mono = x.mean(0, keepdim=True)
        if not torch.isfinite(mono).all():  # NaN or Inf in any channel reaches the downmix
            raise AudioError("contains NaN or Inf samples")
        # Patches lie on a grid of patch_hop frames from the song's start, whatever the segment.
        skip = -first_frame % model.patch_hop
        mono = fft_resample(mono, self.sample_rate, self.model_rate, self.guard)
        return model.magnitude(mono)[..., skip:], skip

    @torch.inference_mode()
    def masks(self, magnitudes: List[torch.Tensor]) -> List[torch.Tensor]:
        """Masks ``(n_masks, n_bins, frames)`` of several magnitudes, their patches through the network together.

        Shorter magnitudes are zero-padded to the longest: the padding only adds patches after
        their last frame, so each mask is the one its magnitude gets alone.
        """
        frames = [m.shape[-1] for m in magnitudes]
        batch = torch.cat([F.pad(m, (0, max(frames) - n)) for m, n in zip(magnitudes, frames)])
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            all_masks = self.model.masks_from_magnitude(batch).float()
        out = []
        for masks, n in zip(all_masks, frames):
            masks = masks[..., :n]
            if len(self.names) > 2:  # several masks share the mix
                masks = masks / masks.sum(0, keepdim=True).clamp_min(1e-8)
            elif masks.shape[0] == 2:
                masks = masks[:1] / masks.sum(0, keepdim=True).clamp_min(1e-8)
            out.append(masks)
        return out

    @torch.inference_mode()
    def apply_masks(self, x: torch.Tensor, masks: torch.Tensor, skip: int, core: slice) -> Dict[str, torch.Tensor]:
        """Stems ``(channels, core length)`` of a segment's ``core``: its model-rate masks carried onto the
        full-band STFT of the core and one window's worth around it (frames on the segment's grid)."""
        model = self.model
        step = self.samples(self.frame_step)  # model frames and full-band hops coincide every step samples
        pad = math.ceil(self.n_fft / step) * step  # STFT edges stay away from the core
        start = max(0, core.start - pad) // step * step
        x = x[:, start : min(x.shape[-1], math.ceil((core.stop + pad) / step) * step)]
        full_masks = [
            interpolate_mask(
                mask,
                model_bin_hz=self.model_rate / model.n_fft,
                model_frame_s=model.hop_length / self.model_rate,
                n_freqs=self.n_fft // 2 + 1,
                bin_hz=self.sample_rate / self.n_fft,
                n_frames=1 + x.shape[-1] // self.hop,  # torch.stft's frame count with center=True
                frame_s=self.hop / self.sample_rate,
                offset_frames=skip - start // step * self.frame_step,
            )
            for mask in masks
        ]
        core = slice(core.start - start, core.stop - start)
        stems: Dict[str, torch.Tensor] = {name: x.new_empty(x.shape[0], core.stop - core.start) for name in self.names[:-1]}
        for channel in range(x.shape[0]):  # one channel at a time bounds the STFT's memory
            spec = torch.stft(x[channel], self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
            for name, full in zip(self.names[:-1], full_masks):
                masked = spec if name == self.names[-2] else spec.clone()  # the last masked stem may reuse spec
                wave = torch.istft(masked.mul_(full), self.n_fft, self.hop, window=self.window, length=x.shape[-1])
                stems[name][channel] = wave[core]
        stems[self.names[-1]] = x[:, core] - sum(stems.values())
        return stems


def stem_names(model: UNet) -> List[str]:
    """Output stems: the model's targets, plus the residual for a single-target model."""
    if len(model.targets) > 1:
        return list(model.targets)
    return [model.targets[0], "accompaniment" if model.targets[0] == "vocals" else "residual"]


def separate(
    waveform: Union[torch.Tensor, np.ndarray],
    sample_rate: int,
    model: Union[None, str, UNet] = None,
    device: Optional[str] = None,
    chunk_seconds: float = 60.0,
    precision: str = "float32",
) -> Dict[str, torch.Tensor]:
    """Separate a waveform ``(time,)`` or ``(channels, time)`` at any rate into full-band stems.

    Args:
        waveform: the mix, float samples.
        sample_rate (int): its rate in Hz.
        model: a UNet, a path / hub folder / repo id, or None for the default weights.
        device, chunk_seconds, precision: see :class:`Separator`.

    Returns:
        dict ``{"vocals": ..., "accompaniment": ...}`` of tensors shaped like ``waveform``,
        at ``sample_rate``; they sum to the input.
    """
    wav = torch.as_tensor(np.asarray(waveform) if not isinstance(waveform, torch.Tensor) else waveform)
    if wav.ndim not in (1, 2):
        raise ValueError(f"waveform must be (time,) or (channels, time), got shape {tuple(wav.shape)}")
    x = wav.reshape(1 if wav.ndim == 1 else wav.shape[0], wav.shape[-1]).float()
    separator = Separator(load_model(model), sample_rate, chunk_seconds, device, precision)
    n = x.shape[-1]

    def read(start: int, stop: int) -> torch.Tensor:
        out = x.new_zeros(x.shape[0], stop - start)
        lo, hi = max(start, 0), min(stop, n)
        out[:, lo - start : hi - start] = x[:, lo:hi]
        return out

    parts: Dict[str, list] = {name: [] for name in separator.names}
    for _, stems in separator.iter_chunks(read, n):
        for name, s in stems.items():
            parts[name].append(s)
    return {
        name: (torch.cat(p, -1) if p else x.new_zeros(x.shape)).reshape(wav.shape).to(wav.dtype if wav.is_floating_point() else torch.float32)
        for name, p in parts.items()
    }


def output_name(path: Path) -> str:
    """The folder name for a song: its file name without extension (and without ``.stem``)."""
    name = path.name
    for suffix in (".stem.mp4", ".stem.m4a"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


class SongOutput:
    """The stems of one song, written all or none: ``outdir/<name>/<stem>.<fmt>``.

    Checks the targets (existing stems are kept unless ``force``), creates the song folder and
    removes temporary files a killed earlier run left; stems go to hidden temporary files
    (:class:`~asteroid_unet.audio.AtomicWriter`). ``commit`` renames them all into place;
    ``abort`` (or an error in ``commit``) leaves no stem and no empty song folder behind.
    """

    def __init__(self, path: Path, outdir: Union[str, Path], names: List[str], fmt: str, force: bool,
                 sample_rate: int, channels: int):
        self.song_dir = Path(outdir) / output_name(path)
        targets = {name: self.song_dir / f"{name}.{fmt}" for name in names}
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing and not force:
            raise AudioError(f"output exists ({existing[0]}); use --force to overwrite")
        self.targets = targets
        self.created = not self.song_dir.exists()
        try:
            self.song_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AudioError(f"cannot create output folder {self.song_dir} ({err.strerror})") from None
        if not os.access(self.song_dir, os.W_OK):
            raise AudioError(f"output folder {self.song_dir} is not writable")
        for name in targets:  # temp files a killed earlier run left (kill -9 skips our cleanup)
            for stale in self.song_dir.glob(f".{name}.*.partial"):
                stale.unlink(missing_ok=True)
        self.writers: Dict[str, AtomicWriter] = {}
        try:
            for name, target in targets.items():
                self.writers[name] = AtomicWriter(target, sample_rate, channels, fmt)
        except BaseException as err:
            self.abort(err)

    def write(self, stems: Dict[str, torch.Tensor]) -> None:
        """Append a block ``{stem: (channels, time)}`` to every stem."""
        for name, block in stems.items():
            self.writers[name].write(block)

    def commit(self) -> Dict[str, Path]:
        """Rename every stem into place (all or none) and return their paths."""
        committed: List[Path] = []
        try:
            for writer in self.writers.values():
                writer.commit()
                committed.append(writer.path)
        except BaseException as err:
            for done in committed:
                done.unlink(missing_ok=True)
            self.abort(err)
        return self.targets

    def abort(self, err: BaseException) -> None:
        """Remove every temporary file (and the song folder if this created it), then raise ``err``;
        an OS or runtime error becomes a one-line ``AudioError``."""
        for writer in self.writers.values():
            writer.abort()
        if self.created:  # leave no empty folder behind for a song that failed
            try:
                self.song_dir.rmdir()
            except OSError:
                pass
        if isinstance(err, (OSError, RuntimeError)) and not isinstance(err, AudioError):
            raise AudioError(f"cannot write stems ({str(err).splitlines()[0][:120]})") from None
        raise err


def output_format(path: Path, fmt: Optional[str]) -> str:
    """``fmt``, or the input's own format when it is an output format, else wav."""
    fmt = fmt or (path.suffix.lower().lstrip(".") if path.suffix.lower().lstrip(".") in OUTPUT_FORMATS else "wav")
    if fmt not in OUTPUT_FORMATS:
        raise AudioError(f"unknown output format {fmt!r}; choose from {', '.join(sorted(OUTPUT_FORMATS))}")
    return fmt


def separate_file(
    path: Union[str, Path],
    outdir: Union[str, Path] = "separated",
    model: Union[None, str, UNet] = None,
    fmt: Optional[str] = None,
    force: bool = False,
    device: Optional[str] = None,
    chunk_seconds: float = 60.0,
    precision: str = "float32",
    progress: bool = False,
) -> Dict[str, Path]:
    """Separate an audio file into ``outdir/<name>/<stem>.<fmt>`` at its own rate and channel count.

    Reads and writes chunk by chunk (bounded memory); each stem is written to a temporary
    file renamed into place at the end, so an error or an interrupt leaves no partial stem.
    Existing stems are kept unless ``force``.

    Returns:
        dict stem name -> written path.

    Raises:
        AudioError: unreadable input, existing outputs, unwritable folder, NaN/Inf samples.
    """
    path = Path(path)
    fmt = output_format(path, fmt)
    model = load_model(model)
    existing = [p for p in (Path(outdir) / output_name(path) / f"{n}.{fmt}" for n in stem_names(model)) if p.exists()]
    if existing and not force:  # before decoding: a refused file costs nothing
        raise AudioError(f"output exists ({existing[0]}); use --force to overwrite")
    with AudioReader(path) as reader:
        if reader.frames == 0:
            raise AudioError("no samples in file")
        separator = Separator(model, reader.sample_rate, chunk_seconds, device, precision)
        output = SongOutput(path, outdir, separator.names, fmt, force, reader.sample_rate, reader.channels)
        try:
            bar = tqdm(total=reader.frames / reader.sample_rate, unit="s", desc=path.name, disable=None if progress else True,
                       bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]")
            with bar:
                for start, stems in separator.iter_chunks(reader.read, reader.frames):
                    output.write(stems)
                    bar.update(stems[separator.names[0]].shape[-1] / reader.sample_rate)
        except BaseException as err:
            output.abort(err)
        return output.commit()
