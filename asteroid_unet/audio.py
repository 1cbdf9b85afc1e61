"""Audio decoding and encoding: random-access readers and atomic writers that never hold a whole song."""
import contextlib
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
# Output format -> soundfile's (format, subtype); m4a has none: ffmpeg encodes it (so does opus where
# libsndfile refuses the rate: it writes opus at 8, 12, 16, 24 and 48 kHz only).
OUTPUT_FORMATS = {"wav": ("WAV", None), "flac": ("FLAC", None), "mp3": ("MP3", "MPEG_LAYER_III"),
                  "ogg": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS"), "m4a": (None, None)}
FFMPEG_CODECS = {"opus": ["-c:a", "libopus", "-f", "opus"], "m4a": ["-c:a", "aac", "-b:a", "256k", "-f", "ipod"]}
SAMPLE_FORMATS = {"int16": "PCM_16", "int24": "PCM_24", "float32": "FLOAT"}  # for wav and flac stems
MP3_BITRATE = 320  # kbit/s, as Demucs
# The bitrates libsndfile's MP3 encoder spans at compression level 0 to 1, by sample rate (MPEG 1, 2, 2.5).
MP3_BITRATES = ((32000, (32, 320)), (16000, (8, 160)), (0, (8, 64)))
SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's sf_command code (sndfile.h); soundfile does not export it
UNKNOWN_FRAMES = 2**62  # libsndfile reports 2**63 - 1 frames for a file whose header does not give its length


class AudioError(Exception):
    """A file that cannot be read or written, with a one-line reason."""


class AudioReader:
    """Random-access reader over any file soundfile or ffmpeg decodes, or over a range of it.

    Formats soundfile cannot open (m4a, MUSDB ``.stem.mp4``, ...), and files whose header
    does not give their length, are decoded once by ffmpeg into a temporary float WAV on disk
    (first audio stream: a stem file's mixture), so memory never holds the whole song; with a
    range, ffmpeg decodes only that range, and soundfile seeks to it. Use as a context manager.

    Args:
        path: the audio file.
        offset (float): seconds skipped at the start. Default 0.
        duration (float): seconds read from there (None: to the end).
    """

    def __init__(self, path, offset: float = 0.0, duration: Optional[float] = None):
        self.path = Path(path)
        self._tmpdir: Optional[str] = None
        check_file(self.path)
        try:
            with quiet_stderr():  # libmpg123 prints its own line about a file it cannot read
                self._file = sf.SoundFile(str(self.path))
            self._start = round(offset * self._file.samplerate)
        except (sf.LibsndfileError, RuntimeError, TypeError):
            self._file, self._start = self._decode_with_ffmpeg(offset, duration), 0
        if self._file.frames >= UNKNOWN_FRAMES:  # a header without the length: decoding finds it
            self._file.close()
            self._file, self._start = self._decode_with_ffmpeg(offset, duration), 0
        if self._file.frames == 0 and self.path.stat().st_size > 0 and self._file.samplerate == 0:
            raise AudioError("no audio in file")
        if offset and self._start >= self._file.frames:
            length = f" ({self._file.frames / self._file.samplerate:.1f} s)" if self._tmpdir is None else ""
            self.close()
            raise AudioError(f"offset {offset:g} s is past the end of the song{length}")
        left = self._file.frames - self._start
        self._frames = left if duration is None else min(left, round(duration * self._file.samplerate))

    def _decode_with_ffmpeg(self, offset: float, duration: Optional[float]) -> sf.SoundFile:
        self._tmpdir = tempfile.mkdtemp(prefix="asteroid-unet-")
        try:
            return sf.SoundFile(str(decode_to_wav(self.path, Path(self._tmpdir) / "decoded.wav", duration, offset)))
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
        """Samples per channel in the range read."""
        return self._frames

    @property
    def sample_format(self) -> Optional[str]:
        """The input's own sample format (:data:`SAMPLE_FORMATS`) when it is stored lossless, else None."""
        if self._tmpdir is not None or self._file.format in ("MP3", "OGG"):
            return None
        subtype = self._file.subtype
        if subtype in ("PCM_S8", "PCM_U8", "PCM_16"):
            return "int16"
        if subtype == "PCM_24":
            return "int24"
        return "float32" if subtype in ("PCM_32", "FLOAT", "DOUBLE") else None

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[start, stop)`` of the range as ``(channels, stop - start)`` float32, zero outside it.

        The tensor is a transposed view of the file's interleaved ``(time, channels)`` layout:
        decoded in place, with no copy.
        """
        out = np.zeros((stop - start, self.channels), dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.frames)
        if hi > lo:
            try:
                self._file.seek(self._start + lo)
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


def decode_to_wav(path: Path, wav: Path, max_seconds: Optional[float] = None, offset: float = 0.0) -> Path:
    """Decode the first audio stream of ``path`` with ffmpeg into a float WAV at ``wav``.

    Args:
        max_seconds: stop decoding there (None: decode it all), whatever the file's header claims.
        offset: start decoding there, in seconds (ffmpeg seeks, then decodes only from there).
    """
    if shutil.which("ffmpeg") is None:
        raise AudioError("not readable by soundfile, and ffmpeg is not installed to decode it")
    wav.parent.mkdir(parents=True, exist_ok=True)
    limit = [] if max_seconds is None else ["-t", f"{max_seconds:.6f}"]
    seek = ["-ss", f"{offset:.6f}"] if offset else []
    cmd = ["ffmpeg", "-nostdin", "-v", "error", *seek, "-i", str(path), "-map", "0:a:0", *limit, "-c:a", "pcm_f32le",
           "-f", "wav", "-y", str(wav)]
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
        with quiet_stderr():
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


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (what C libraries such as libmpg123 print) for the block's duration."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def mp3_compression(bitrate: int, sample_rate: int) -> float:
    """libsndfile's MP3 compression level for ``bitrate`` kbit/s at constant bitrate: its encoder spans the
    bitrates of the rate's MPEG version linearly from level 0 (the highest) to 1 (the lowest), and LAME
    takes the nearest standard bitrate; a bitrate outside the span gets its nearest end."""
    low, high = next(span for floor, span in MP3_BITRATES if sample_rate >= floor)
    return min(max((high - bitrate) / (high - low), 0.0), 0.999)  # libsndfile refuses exactly 1


def ffmpeg_needed(fmt: str, sample_rate: int) -> bool:
    """Whether ``fmt`` at ``sample_rate`` needs ffmpeg: soundfile cannot write it."""
    if OUTPUT_FORMATS[fmt][0] is None:
        return True
    return fmt == "opus" and sample_rate not in (8000, 12000, 16000, 24000, 48000)


def check_writable(fmt: str, sample_rate: int) -> None:
    """AudioError, in one line, when neither soundfile nor ffmpeg can write ``fmt`` at ``sample_rate``."""
    if ffmpeg_needed(fmt, sample_rate) and shutil.which("ffmpeg") is None:
        raise AudioError(f"cannot write {fmt} at {sample_rate} Hz: soundfile cannot, and ffmpeg is not installed")


class AtomicWriter:
    """Writes an audio file through a hidden temporary file renamed into place on success.

    On error (or when ``abort`` is called) the temporary file is removed: no partial output.
    Integer samples clip at full scale (clamped, never wrapped around). A format soundfile cannot
    write (m4a, opus at a rate libsndfile refuses) is written as a temporary float WAV, which
    ffmpeg encodes at :meth:`commit`.

    Args:
        path: the file to write.
        sample_rate, channels: its rate and channel count.
        fmt (str): one of :data:`OUTPUT_FORMATS`. Default wav.
        sample_format (str): ``int16``, ``int24`` or ``float32`` (:data:`SAMPLE_FORMATS`) for wav and flac
            (FLAC has no float: ``float32`` is refused); lossy formats ignore it. Default: float32 WAV,
            16-bit FLAC.
        bitrate (int): kbit/s of an mp3 (default :data:`MP3_BITRATE`, constant bitrate).
    """

    def __init__(self, path, sample_rate: int, channels: int, fmt: str = "wav", sample_format: Optional[str] = None,
                 bitrate: Optional[int] = None):
        if fmt not in OUTPUT_FORMATS:
            raise AudioError(f"unknown output format {fmt!r}; choose from {', '.join(sorted(OUTPUT_FORMATS))}")
        if fmt == "flac" and sample_format == "float32":
            raise AudioError("FLAC stores integer samples: choose int16 or int24, or wav for float32")
        check_writable(fmt, sample_rate)
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        self._wav: Optional[Path] = None  # the float WAV that ffmpeg encodes, for formats soundfile cannot write
        major, subtype = OUTPUT_FORMATS[fmt]
        if fmt in ("wav", "flac"):
            subtype = SAMPLE_FORMATS[sample_format or ("float32" if fmt == "wav" else "int16")]
        self._clip = subtype in ("PCM_16", "PCM_24")
        options = {}
        if fmt == "mp3":
            level = mp3_compression(bitrate or MP3_BITRATE, sample_rate)
            options = dict(bitrate_mode="CONSTANT", compression_level=level)
        if ffmpeg_needed(fmt, sample_rate):
            self._wav = self.path.with_name(f".{self.path.name}.wav.partial")
            self._codec = FFMPEG_CODECS[fmt]
            target, major, subtype, options = self._wav, "WAV", "FLOAT", {}
        else:
            target = self._tmp
        self._file = sf.SoundFile(str(target), "w", samplerate=sample_rate, channels=channels, format=major,
                                  subtype=subtype, **options)
        if subtype == "FLOAT":  # no PEAK chunk: it carries a timestamp, and same stems must give same bytes
            sf._snd.sf_command(self._file._file, SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)

    def write(self, block: torch.Tensor):
        """Append ``(channels, time)`` samples."""
        samples = block.detach().cpu().numpy().T
        self._file.write(np.clip(samples, -1.0, 1.0) if self._clip else samples)

    def commit(self):
        self._file.close()
        if self._wav is not None:
            self._encode()
        os.replace(self._tmp, self.path)

    def _encode(self):
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(self._wav), *self._codec, "-y", str(self._tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        self._wav.unlink(missing_ok=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise AudioError(f"ffmpeg cannot encode {self.path.name} ({last[:100]})")

    def abort(self):
        try:
            self._file.close()
        except Exception:  # a failed flush (disk full, ...) must not keep the temporary file
            pass
        self._tmp.unlink(missing_ok=True)
        if self._wav is not None:
            self._wav.unlink(missing_ok=True)
