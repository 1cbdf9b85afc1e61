"""Audio decoding and encoding: random-access readers and atomic writers that never hold a whole song."""
import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import soundfile as sf
import torch

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".mp4", ".aac", ".aif", ".aiff", ".opus", ".wma"}
OUTPUT_FORMATS = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3"}
SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's sf_command code (sndfile.h); soundfile does not export it
UNKNOWN_FRAMES = 2**62  # libsndfile reports 2**63 - 1 frames for a file whose header does not give its length


class AudioError(Exception):
    """A file that cannot be read or written, with a one-line reason."""


class AudioReader:
    """Random-access reader over any file soundfile or ffmpeg decodes.

    Formats soundfile cannot open (m4a, MUSDB ``.stem.mp4``, ...), and files whose header
    does not give their length, are decoded once by ffmpeg into a temporary float WAV on disk
    (first audio stream: a stem file's mixture), so memory never holds the whole song. Use as
    a context manager.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._tmpdir: Optional[str] = None
        check_file(self.path)
        try:
            self._file = sf.SoundFile(str(self.path))
        except (sf.LibsndfileError, RuntimeError, TypeError):
            self._file = self._decode_with_ffmpeg()
        if self._file.frames >= UNKNOWN_FRAMES:  # a header without the length: decoding finds it
            self._file.close()
            self._file = self._decode_with_ffmpeg()
        if self._file.frames == 0 and self.path.stat().st_size > 0 and self._file.samplerate == 0:
            raise AudioError("no audio in file")

    def _decode_with_ffmpeg(self) -> sf.SoundFile:
        self._tmpdir = tempfile.mkdtemp(prefix="asteroid-unet-")
        try:
            return sf.SoundFile(str(decode_to_wav(self.path, Path(self._tmpdir) / "decoded.wav")))
        except BaseException:
            self.close()
            raise

    @property
    def sample_rate(self) -> int:
        return self._file.samplerate

    @property
    def channels(self) -> int:
        return self._file.channels

    @property
    def frames(self) -> int:
        return self._file.frames

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[start, stop)`` as ``(channels, stop - start)`` float32, zero outside the file.

        The tensor is a transposed view of the file's interleaved ``(time, channels)`` layout:
        decoded in place, with no copy.
        """
        out = np.zeros((stop - start, self.channels), dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.frames)
        if hi > lo:
            try:
                self._file.seek(lo)
                self._file.read(hi - lo, dtype="float32", always_2d=True, out=out[lo - start : hi - start])
            except (sf.LibsndfileError, RuntimeError) as err:
                raise AudioError(f"damaged audio data near {lo / self.sample_rate:.1f} s ({str(err)[:80]})") from None
        return torch.from_numpy(out).T

    def close(self):
        if getattr(self, "_file", None) is not None:
            self._file.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_file(path: Path) -> None:
    """Raise :class:`AudioError` unless ``path`` is a readable, non-empty regular file."""
    if path.is_dir():
        raise AudioError("is a directory, not an audio file")
    if not path.exists():
        raise AudioError("no such file")
    if not path.is_file():
        raise AudioError("not a regular file")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError("not readable (permission denied)")


def decode_to_wav(path: Path, wav: Path, max_seconds: Optional[float] = None) -> Path:
    """Decode the first audio stream of ``path`` with ffmpeg into a float WAV at ``wav``.

    Args:
        max_seconds: stop decoding there (None: decode it all), whatever the file's header claims.
    """
    if shutil.which("ffmpeg") is None:
        raise AudioError("not readable by soundfile, and ffmpeg is not installed to decode it")
    wav.parent.mkdir(parents=True, exist_ok=True)
    limit = [] if max_seconds is None else ["-t", f"{max_seconds:.3f}"]
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", *limit, "-c:a", "pcm_f32le", "-f", "wav",
           "-y", str(wav)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not wav.exists():
        wav.unlink(missing_ok=True)
        if "matches no streams" in proc.stderr:
            raise AudioError("no audio stream in file")
        last = (proc.stderr.strip().splitlines() or ["unknown format"])[-1]
        raise AudioError(f"not an audio file, or damaged ({last.rsplit(': ', 1)[-1][:80]})")
    return wav


class AudioInfo(NamedTuple):
    """What a file's header says, before any decoding (``seconds`` is NaN when it does not say)."""
    seconds: float
    channels: int
    sample_rate: int
    soundfile: bool  # soundfile reads it in place; else ffmpeg must decode it first


def probe(path: Path) -> Optional[AudioInfo]:
    """Duration, channels and rate from the header (soundfile, else ffprobe); None when neither reads it.
    A header that does not give the length (libsndfile then reports 2**63 - 1 frames) gives NaN seconds
    and ``soundfile=False``: the file must be decoded to know it."""
    try:
        info = sf.info(str(path))
        if info.frames < UNKNOWN_FRAMES:
            return AudioInfo(info.frames / max(info.samplerate, 1), info.channels, info.samplerate, True)
        return AudioInfo(math.nan, info.channels, info.samplerate, False)  # a header without the length
    except Exception:  # not a soundfile format, or damaged
        pass
    if shutil.which("ffprobe") is None:
        return None
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=channels,sample_rate,duration:format=duration", "-of", "json", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        found = json.loads(proc.stdout or "{}")
    except (subprocess.TimeoutExpired, ValueError):
        return None
    if proc.returncode != 0 or not found.get("streams"):
        return None
    stream = found["streams"][0]
    seconds = stream.get("duration") or found.get("format", {}).get("duration")
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        seconds = math.nan
    return AudioInfo(seconds, int(stream.get("channels") or 0), int(stream.get("sample_rate") or 0), False)


class AtomicWriter:
    """Writes an audio file through a hidden temporary file renamed into place on success.

    On error (or when ``abort`` is called) the temporary file is removed: no partial output.
    """

    def __init__(self, path, sample_rate: int, channels: int, fmt: str = "wav"):
        if fmt not in OUTPUT_FORMATS:
            raise AudioError(f"unknown output format {fmt!r}; choose from {sorted(OUTPUT_FORMATS)}")
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        subtype = "FLOAT" if fmt == "wav" else None
        self._file = sf.SoundFile(
            str(self._tmp), "w", samplerate=sample_rate, channels=channels, format=OUTPUT_FORMATS[fmt], subtype=subtype
        )
        if subtype == "FLOAT":  # no PEAK chunk: it carries a timestamp, and same stems must give same bytes
            sf._snd.sf_command(self._file._file, SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)

    def write(self, block: torch.Tensor):
        """Append ``(channels, time)`` samples."""
        self._file.write(block.detach().cpu().numpy().T)

    def commit(self):
        self._file.close()
        os.replace(self._tmp, self.path)

    def abort(self):
        try:
            self._file.close()
        except Exception:  # a failed flush (disk full, ...) must not keep the temporary file
            pass
        self._tmp.unlink(missing_ok=True)
