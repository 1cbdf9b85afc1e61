"""Training chunks from a prepared folder, drawn across track ends so that short tracks train too.

A prepared folder holds ``<root>/<split>/<track>/{vocals,accompaniment}.<ext>`` (the
recipes' stage 0 layout, any rate or format that soundfile reads). Each source's tracks are
brought to the model's channel count (downmixed for a mono model, a mono file repeated for a
stereo one), resampled to the model rate and joined into one stream; a training chunk is a
window of a stream, so it may cross from one track into the next. That lets 7 s MUSDB18
previews and short MIR-1K songs feed 11.9 s patches without padding. With cross-track
remixing, every source is drawn from its own stream at its own offset, and all-silent
tracks (the vocals of instrumental music) are left out of that source's stream.
"""
import json
import math
import os
import random
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import soundfile as sf
import torch
from torch.utils.data import Dataset

from .provenance import dataset

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")


def source_file(track: Path, source: str) -> Path:
    """The audio file of ``source`` in a track folder, whatever its extension."""
    for ext in AUDIO_EXTENSIONS:
        if (track / f"{source}{ext}").is_file():
            return track / f"{source}{ext}"
    raise FileNotFoundError(f"{track} has no {source} file ({', '.join(AUDIO_EXTENSIONS)})")


def clip_songs(root: Path) -> Dict[str, List[Path]]:
    """``{song: [clip folders in clip order]}`` of a folder of clips named ``<song>_<NN>``
    (MIR-1K's layout), songs sorted by name; a clip without the suffix is a song of its own."""
    grouped: Dict[str, list] = {}
    for clip in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        match = re.fullmatch(r"(.+)_(\d+)", clip.name)
        key, number = (match.group(1), int(match.group(2))) if match else (clip.name, 0)
        grouped.setdefault(key, []).append((number, clip))
    return {song: [clip for _, clip in sorted(clips)] for song, clips in sorted(grouped.items())}


def read_channels(path: Path, sample_rate: int, channels: int = 1) -> torch.Tensor:
    """A file as a float32 waveform ``(channels, time)`` at ``sample_rate``: downmixed when
    ``channels`` is 1, a mono file repeated on every channel otherwise."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    if channels == 1:
        wav = torch.from_numpy(audio.mean(1, keepdims=True).T.copy())
    elif audio.shape[1] in (1, channels):
        wav = torch.from_numpy(audio.T.copy()).expand(channels, -1).contiguous()
    else:
        raise ValueError(f"{path}: {audio.shape[1]} channels, the model needs {channels} (or mono)")
    if rate != sample_rate:
        import torchaudio.functional as AF

        wav = AF.resample(wav, int(rate), int(sample_rate))
    return wav


def prepared_datasets(root: Path) -> List[dict]:
    """The training sets of a prepared folder, for a provenance record: one entry per set that the
    recipe's stage 0 prepared into it (its markers ``.prepared/<set>.json``), with its name, licence,
    training tracks, hours and validation tracks; a folder without markers is one set of unknown origin."""
    root = Path(root)
    markers = sorted((root / ".prepared").glob("*.json"))
    if not markers:
        tracks = track_folders(root, "train")
        return [dataset(root.name, len(tracks), _hours(tracks))]
    entries = []
    for marker in markers:
        info = json.loads(marker.read_text())
        if marker.stem == "musdb":  # prepare_data.py: a MUSDB18 root, or the synthetic set written in its layout
            synthetic = (Path(info["settings"]["musdb_root"]) / "synth.json").is_file()
            name = "synthetic-musdb18" if synthetic else "musdb18"
        else:  # prepare_pairs.py / prepare_instrumental.py: the root's name
            name = marker.stem
        train = [root / "train" / t for t in info["tracks"].get("train", [])]
        entries.append(dataset(name, len(train), _hours(train), validation_tracks=len(info["tracks"].get("valid", []))))
    return entries


def _hours(tracks: Sequence[Path]) -> float:
    return sum(sf.info(str(source_file(t, "accompaniment"))).duration for t in tracks) / 3600


def track_folders(root: Path, split: str) -> List[Path]:
    folders = sorted(p for p in (Path(root) / split).iterdir() if p.is_dir()) if (Path(root) / split).is_dir() else []
    if not folders:
        raise FileNotFoundError(f"no track folders under {Path(root) / split}")
    return folders


def load_tracks(root: Path, split: str, sources: Sequence[str], sample_rate: int,
                channels: int = 1) -> List[Dict[str, torch.Tensor]]:
    """``[{source: (channels, time)}]``, one dict per track, every source cut to the track's shortest.

    Files are decoded in threads (soundfile and the resampler release the GIL)."""

    def load(folder: Path) -> Dict[str, torch.Tensor]:
        audio = {s: read_channels(source_file(folder, s), sample_rate, channels) for s in sources}
        length = min(a.shape[-1] for a in audio.values())
        return {s: a[:, :length] for s, a in audio.items()}

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return list(pool.map(load, track_folders(root, split)))


class RandomChunks(Dataset):
    """Random training chunks ``(mix (channels, time), targets (n_targets, channels, time))`` of ``length`` samples.

    Args:
        tracks: ``[{source: (channels, time)}]`` as :func:`load_tracks` returns.
        targets (Sequence[str]): the sources to predict, in order; the mix sums all sources.
        length (int): samples per chunk.
        n_chunks (int): chunks per epoch (the dataset's length).
        random_track_mix (bool): every source from its own random offset (cross-track
            remixing); else one offset, so the sources stay aligned. Default True.
        gain_range (tuple): a random gain per source, uniform in ``[low, high]``. Default (1, 1).
        channel_swap (bool): swap the two channels of each stereo source with probability 1/2
            (per source with cross-track remixing, else per chunk). Default False.
    """

    def __init__(self, tracks: List[Dict[str, torch.Tensor]], targets: Sequence[str], length: int, n_chunks: int,
                 random_track_mix: bool = True, gain_range: Tuple[float, float] = (1.0, 1.0),
                 channel_swap: bool = False):
        self.sources = list(tracks[0])
        self.targets = list(targets)
        self.channels = tracks[0][self.sources[0]].shape[0]
        self.length, self.n_chunks = int(length), int(n_chunks)
        self.random_track_mix, self.gain_range = bool(random_track_mix), tuple(gain_range)
        self.channel_swap = bool(channel_swap) and self.channels == 2
        if random_track_mix:
            self.streams = {s: self._join([t[s] for t in tracks if t[s].abs().max() > 0]) for s in self.sources}
        else:
            self.streams = {s: self._join([t[s] for t in tracks]) for s in self.sources}

    def _join(self, parts: List[torch.Tensor]) -> torch.Tensor:
        stream = torch.cat(parts, dim=-1) if parts else torch.zeros(self.channels, 0)
        n = stream.shape[-1]
        if n < self.length:  # less audio than one chunk in all: repeat it
            stream = stream.repeat(1, math.ceil(self.length / n)) if n else torch.zeros(self.channels, self.length)
        return stream

    @property
    def stream_lengths(self) -> Dict[str, int]:
        """Samples in each source's stream."""
        return {s: x.shape[-1] for s, x in self.streams.items()}

    def __len__(self) -> int:
        return self.n_chunks

    def __getitem__(self, index: int):
        offset = swap = None
        audio = {}
        for source, stream in self.streams.items():
            if offset is None or self.random_track_mix:
                offset = random.randrange(stream.shape[-1] - self.length + 1)
                swap = self.channel_swap and random.random() < 0.5
            chunk = stream[:, offset : offset + self.length] * random.uniform(*self.gain_range)
            audio[source] = chunk.flip(0) if swap else chunk
        return sum(audio.values()), torch.stack([audio[t] for t in self.targets])

    def batch(self, batch_size: int, generator: torch.Generator, device: torch.device):
        """A whole batch ``(mix (batch, [channels,] time), targets (batch, n_targets, [channels,] time))``
        drawn on ``device``, the channel axis only for more than one channel.

        Same distribution as ``__getitem__``; the streams move to ``device`` once, so a GPU
        draws its own batches.
        """
        if any(s.device != device for s in self.streams.values()):
            self.streams = {s: x.to(device) for s, x in self.streams.items()}
        window = torch.arange(self.length, device=device)
        offsets = None
        audio = {}
        for source, stream in self.streams.items():
            if offsets is None or self.random_track_mix:
                high = stream.shape[-1] - self.length + 1
                offsets = (torch.rand(batch_size, generator=generator, device=device) * high).long()
                swaps = torch.rand(batch_size, generator=generator, device=device) < 0.5
            low, high = self.gain_range
            gains = low + (high - low) * torch.rand(batch_size, 1, 1, generator=generator, device=device)
            chunk = stream[:, offsets[:, None] + window].transpose(0, 1) * gains  # (batch, channels, time)
            audio[source] = torch.where(swaps[:, None, None], chunk.flip(1), chunk) if self.channel_swap else chunk
        mix, targets = sum(audio.values()), torch.stack([audio[t] for t in self.targets], dim=1)
        return (mix[:, 0], targets[:, :, 0]) if self.channels == 1 else (mix, targets)


class FixedChunks(Dataset):
    """Validation chunks: up to ``max_per_track`` consecutive chunks of each track, the last one
    (and a track shorter than a chunk) zero-padded, so every track counts. Items as :class:`RandomChunks`."""

    def __init__(self, tracks: List[Dict[str, torch.Tensor]], targets: Sequence[str], length: int,
                 max_per_track: int):
        self.targets, self.length = list(targets), int(length)
        self.items = []
        for track in tracks:
            n = next(iter(track.values())).shape[-1]
            for k in range(min(max_per_track, max(1, math.ceil(n / self.length)))):
                self.items.append({s: self._padded(a[:, k * self.length : (k + 1) * self.length])
                                   for s, a in track.items()})

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, self.length - x.shape[-1]))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        audio = self.items[index]
        return sum(audio.values()), torch.stack([audio[t] for t in self.targets])
