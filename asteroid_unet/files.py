"""Songs from files to stem files: the one driver of a song's life cycle.

Read, separate chunk by chunk, write every stem all or none, and fail per file: one song or
many. With ``batch_files`` above 1, songs advance chunk by chunk in step and each step sends the
patches that all of them need through the U-Net together (one pass on a GPU; on the CPU each
song's patches keep calls of their own, so the stems are the bytes of one file at a time).
Everything here takes a loaded model; :mod:`asteroid_unet.separate` and the command line resolve
names and paths.
"""
import glob
import os
import string
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from tqdm import tqdm

from .audio import AUDIO_EXTENSIONS, MP3_BITRATE, OUTPUT_FORMATS, AtomicWriter, AudioError, AudioReader
from .budget import WorkBudget
from .errors import one_line
from .memory import return_freed_memory
from .separator import SongPass, separator_for, stem_names

# {"path": str, "stems": {name: str} or None, "error": str or None, "traceback": str or None,
#  "seconds": audio seconds separated or None, "elapsed": wall seconds or None}
FileResult = Dict[str, object]
DEFAULT_FILENAME = "{track}/{stem}.{ext}"
FILENAME_FIELDS = ("track", "trackext", "stem", "ext", "model")
KEPT_FORMATS = ("wav", "flac", "mp3")  # an input in one of these gets stems in its format by default
GPU_PATCH_VALUES = 256 * 512 * 128  # 256 patches of the paper's size (512 bins x 128 frames, mono) per GPU pass


def expand_inputs(inputs: Iterable[Union[str, Path]]) -> List[Path]:
    """Files as given, and the audio files found (recursively, sorted) in folders; a folder without
    any stays as it is (:func:`separate_files` reports it)."""
    paths: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            paths.extend(found if found else [path])
        else:
            paths.append(path)
    return paths


def output_name(path: Path) -> str:
    """The folder name for a song: its file name without extension (and without ``.stem``)."""
    name = path.name
    for suffix in (".stem.mp4", ".stem.m4a"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def check_filename(template: str) -> None:
    """AudioError, in one line, unless ``template`` is a relative path that names each stem apart:
    fields from :data:`FILENAME_FIELDS` only, ``{stem}`` among them, no ``..``."""
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as err:
        raise AudioError(f"--filename {template!r}: {err}") from None
    unknown = fields - set(FILENAME_FIELDS)
    if unknown:
        raise AudioError(f"--filename {template!r}: unknown field {{{sorted(unknown)[0]}}}; "
                         f"use {', '.join('{' + f + '}' for f in FILENAME_FIELDS)}")
    if "stem" not in fields:
        raise AudioError(f"--filename {template!r} lacks {{stem}}: every stem would go to the same file")
    if Path(template).is_absolute() or ".." in Path(template).parts:
        raise AudioError(f"--filename {template!r} must stay inside the output folder")


def select_stems(model, stems: Optional[Sequence[str]] = None) -> List[str]:
    """The stems to write: ``stems`` (a name or names among the model's), in the model's order, or all of them."""
    names = stem_names(model)
    if stems is None:
        return names
    wanted = [stems] if isinstance(stems, str) else list(stems)
    unknown = [name for name in wanted if name not in names]
    if unknown or not wanted:
        raise AudioError(f"unknown stem {unknown[0]!r}; this model writes {', '.join(names)}" if unknown
                         else "no stem selected")
    return [name for name in names if name in wanted]


def check_distinct(paths: Sequence[Path], outdir: Union[str, Path], names: List[str], fmt: Optional[str] = None,
                   filename: str = DEFAULT_FILENAME, model_label: str = "model") -> None:
    """AudioError, in one line and before any work, when two audio files among ``paths`` (by their extension)
    would write the same stem file; other inputs fail on their own when their turn comes."""
    seen: Dict[Path, Path] = {}
    for path in paths:
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        try:
            targets = stem_targets(path, outdir, names, output_format(path, fmt), True, filename, model_label)
        except AudioError:  # a bad file: reported with its own line when its turn comes
            continue
        for target in targets.values():
            first = seen.setdefault(target, path)
            if first != path:
                raise AudioError(f"{first} and {path} would both write {target}: separate them into different "
                                 "folders, or add {trackext} to --filename (e.g. '{track}.{trackext}/{stem}.{ext}')")


class SongOutput:
    """The stems of one song, written all or none to ``targets`` (see :func:`stem_targets`).

    Creates their folders and removes temporary files a killed earlier run left; stems go to
    hidden temporary files (:class:`~asteroid_unet.audio.AtomicWriter`). :meth:`commit` renames
    them all into place; :meth:`abort` (or an error in :meth:`commit`) leaves no stem and no
    empty folder it created behind.

    Args:
        targets: ``{stem: path}``.
        sample_rate, channels: the stems' rate and channel count.
        fmt, sample_format, bitrate: as in :class:`~asteroid_unet.audio.AtomicWriter`.
    """

    def __init__(self, targets: Dict[str, Path], sample_rate: int, channels: int, fmt: str,
                 sample_format: Optional[str] = None, bitrate: Optional[int] = None):
        self.targets = targets
        folders = list(dict.fromkeys(target.parent for target in targets.values()))
        missing = {d for folder in folders for d in (folder, *folder.parents) if not d.exists()}
        self.created = sorted(missing, key=lambda d: len(d.parts), reverse=True)  # deepest first
        self.writers: Dict[str, AtomicWriter] = {}
        for folder in folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                self.abort(AudioError(f"cannot create output folder {folder} ({err.strerror})"))
            if not os.access(folder, os.W_OK):
                self.abort(AudioError(f"output folder {folder} is not writable"))
        for target in targets.values():  # temp files a killed earlier run left (kill -9 skips our cleanup)
            for stale in target.parent.glob(f".{glob.escape(target.stem)}.*.partial"):
                stale.unlink(missing_ok=True)
        try:
            for name, target in targets.items():
                self.writers[name] = AtomicWriter(target, sample_rate, channels, fmt, sample_format, bitrate)
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
        for folder in self.created:  # leave no empty folder behind for a song that failed
            try:
                folder.rmdir()
            except OSError:
                pass
        if isinstance(err, (OSError, RuntimeError)) and not isinstance(err, AudioError):
            raise AudioError(f"cannot write stems ({str(err).splitlines()[0][:120]})") from None
        raise err


def output_format(path: Path, fmt: Optional[str]) -> str:
    """``fmt``, or the input's own format when it is one of :data:`KEPT_FORMATS`, else wav; AudioError if unknown."""
    fmt = fmt or (path.suffix.lower().lstrip(".") if path.suffix.lower().lstrip(".") in KEPT_FORMATS else "wav")
    if fmt not in OUTPUT_FORMATS:
        raise AudioError(f"unknown output format {fmt!r}; choose from {', '.join(sorted(OUTPUT_FORMATS))}")
    return fmt


def stem_targets(path: Path, outdir: Union[str, Path], names: List[str], fmt: str, force: bool,
                 filename: str = DEFAULT_FILENAME, model_label: str = "model") -> Dict[str, Path]:
    """``{stem: outdir/<filename>}``, the template's fields filled (:data:`FILENAME_FIELDS`: ``track`` is the
    input's name without extension, ``trackext`` its extension); AudioError if one exists, unless ``force``."""
    track = output_name(path)
    fields = dict(track=track, trackext=path.name[len(track):].lstrip("."), ext=fmt, model=model_label)
    targets = {name: Path(outdir) / filename.format(stem=name, **fields) for name in names}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not force:
        raise AudioError(f"output exists ({existing[0]}); use --force to overwrite")
    return targets


def bar_size() -> Dict[str, int]:
    """The progress bar's ``ncols`` and ``nrows``: tqdm's own (none given), unless the terminal on stderr
    reports a size of 0 (a bare pseudo-terminal), where tqdm would draw nothing: then ``$COLUMNS`` x
    ``$LINES``, or 80 x 24."""
    try:
        if os.get_terminal_size(2).columns:
            return {}
    except OSError:  # not a terminal: tqdm draws no bar
        return {}
    size = {"ncols": os.environ.get("COLUMNS", ""), "nrows": os.environ.get("LINES", "")}
    return {key: int(value) if value.isdigit() and int(value) else default
            for (key, value), default in zip(size.items(), (80, 24))}


def gpu_patches_per_pass(model) -> int:
    """Patches per network call on a GPU: as many as hold the values of 256 paper-size patches (16 of
    Spleeter's stereo 1024 x 512 ones), at least the model's ``patch_batch``."""
    values = model.audio_channels * model.n_bins * model.patch_frames
    return max(model.patch_batch, GPU_PATCH_VALUES // values)


class Writing(NamedTuple):
    """How and where stems are written (see :func:`drive`)."""

    fmt: Optional[str] = None
    force: bool = False
    sample_format: Optional[str] = None
    bitrate: int = MP3_BITRATE
    filename: str = DEFAULT_FILENAME
    model_label: str = "model"
    stems: Optional[Sequence[str]] = None


def stem_sample_format(fmt: str, asked: Optional[str], own: Optional[str]) -> str:
    """The sample format of wav and flac stems: the one ``asked``, else the input's ``own`` (lossless
    input), else int16; a float input's FLAC stems take FLAC's widest, int24."""
    if asked:
        return asked
    chosen = own or "int16"
    return "int24" if fmt == "flac" and chosen == "float32" else chosen


class _Song:
    """One open input: its reader, stem output, pass through its rate's separator, and next chunk."""

    def __init__(self, index: int, path: Path, outdir, model, writing: Writing, settings: dict,
                 budget: Optional[WorkBudget] = None, offset: float = 0.0, duration: Optional[float] = None):
        self.index, self.path = index, path
        self.started = time.perf_counter()
        fmt = output_format(path, writing.fmt)
        names = select_stems(model, writing.stems)
        targets = stem_targets(path, outdir, names, fmt, writing.force, writing.filename, writing.model_label)
        if budget is not None:
            budget.check_file(path, offset, duration)  # from the header, before decoding
        self.reader = AudioReader(path, offset, duration)
        try:
            if self.reader.frames == 0:
                raise AudioError("no samples in file")
            if budget is not None:  # a header without a length: checked once decoded
                budget.check(self.seconds, self.reader.channels, self.reader.sample_rate)
            self.separator = separator_for(model, self.reader.sample_rate, **settings)
            self.song_pass = SongPass(self.separator, self.reader.read, self.reader.frames)
            sample_format = stem_sample_format(fmt, writing.sample_format, self.reader.sample_format)
            self.output = SongOutput(targets, self.reader.sample_rate, self.reader.channels, fmt, sample_format,
                                     writing.bitrate)
        except BaseException:
            self.reader.close()
            raise
        self.next_chunk = 0

    @property
    def seconds(self) -> float:
        return self.reader.frames / self.reader.sample_rate

    def finished(self) -> "Outcome":
        self.reader.close()
        stems = self.output.commit()
        return Outcome(self.path, stems, seconds=self.seconds, elapsed=time.perf_counter() - self.started)

    def fail(self, err: BaseException) -> BaseException:
        """Close the input and undo the output; returns what to report: ``err``, or a write error
        as a one-line ``AudioError``."""
        self.reader.close()
        try:
            self.output.abort(err)
        except BaseException as raised:  # abort raises err, or err as a one-line AudioError
            return raised
        return err


class Cancelled(Exception):
    """The caller's ``should_stop`` asked :func:`drive` to stop."""


class Outcome(NamedTuple):
    """What became of one input: its stems, or the error to report (``cause`` is the one raised)."""

    path: Path
    stems: Optional[Dict[str, Path]]
    error: Optional[BaseException] = None
    cause: Optional[BaseException] = None
    seconds: Optional[float] = None  # of audio separated
    elapsed: Optional[float] = None  # wall seconds from opening the song to its last stem


def _step(songs: List[_Song], per_pass: Optional[int], bars: Dict[int, tqdm]) -> List[Tuple[int, Outcome]]:
    """One chunk of every open song, their patches through :meth:`Separator.patch_masks` together (in
    shared passes with ``per_pass``); finished and failed songs leave ``songs`` with ``(index, outcome)``."""
    outcomes, pending = [], []
    for song in list(songs):
        try:
            pending.append((song, song.song_pass.prepare(song.song_pass.chunks[song.next_chunk])))
        except Exception as err:
            songs.remove(song)
            outcomes.append((song.index, Outcome(song.path, None, song.fail(err), err)))
    if not pending:
        return outcomes
    try:
        masks = pending[0][0].separator.patch_masks([chunk.todo for _, chunk in pending], per_pass)
    except Exception as err:  # the network failed (out of GPU memory, say): the step's songs fail with its line
        for song, _ in pending:
            songs.remove(song)
            song.fail(err)
            outcomes.append((song.index, Outcome(song.path, None, err, err)))
        return outcomes
    for (song, chunk), song_masks in zip(pending, masks):
        try:
            stems = song.song_pass.finish(chunk, song_masks)
            song.output.write({name: stems[name] for name in song.output.targets})
            if song.index in bars:
                bars[song.index].update(stems[song.separator.names[0]].shape[-1] / song.reader.sample_rate)
            song.next_chunk += 1
            if song.next_chunk == len(song.song_pass.chunks):
                songs.remove(song)
                outcomes.append((song.index, song.finished()))
        except Exception as err:
            if song in songs:
                songs.remove(song)
            outcomes.append((song.index, Outcome(song.path, None, song.fail(err), err)))
    return outcomes


def drive(
    paths: Sequence[Path],
    outdir: Union[str, Path],
    model,
    batch_files: int = 1,
    fmt: Optional[str] = None,
    force: bool = False,
    progress: bool = False,
    shared_passes: Optional[bool] = None,
    budget: Optional[WorkBudget] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    sample_format: Optional[str] = None,
    bitrate: int = MP3_BITRATE,
    filename: str = DEFAULT_FILENAME,
    model_label: str = "model",
    stems: Optional[Sequence[str]] = None,
    offset: float = 0.0,
    duration: Optional[float] = None,
    **settings,
) -> Iterator[Outcome]:
    """Yield the :class:`Outcome` of every input, in input order, with up to ``batch_files`` songs in
    step; ``settings`` are the :class:`~asteroid_unet.separator.Separator`'s (``device``, ``chunk_seconds``,
    ``precision``, ``full_band``, ``wiener_iterations``, ``tta``). A song over ``budget`` (a
    :class:`~asteroid_unet.budget.WorkBudget`, None: none) fails with its one line before it is
    decoded. An interrupt, or a caller that stops early, leaves no partial stem; so does
    ``should_stop`` (None: never), asked before every chunk: when it answers True, :class:`Cancelled`
    is raised. The memory a song freed goes back to the system when it ends. The other arguments
    are :func:`separate_file`'s."""
    check_filename(filename)
    writing = Writing(fmt, force, sample_format, bitrate, filename, model_label, stems)
    device = settings.get("device")
    if shared_passes is None:
        shared_passes = torch.device(device or next(model.parameters()).device).type != "cpu"
    per_pass = gpu_patches_per_pass(model) if shared_passes else None
    outcomes: Dict[int, Outcome] = {}
    songs: List[_Song] = []
    bars: Dict[int, tqdm] = {}
    waiting = iter(enumerate(paths))
    done = 0
    files_bar = tqdm(total=len(paths), unit="file", disable=None if progress and batch_files > 1 else True,
                     **bar_size())
    try:
        with files_bar:
            while done < len(paths):
                while len(songs) < max(1, batch_files) and (item := next(waiting, None)) is not None:
                    index, path = item
                    try:
                        song = _Song(index, path, outdir, model, writing, settings, budget, offset, duration)
                    except Exception as err:
                        outcomes[index] = Outcome(path, None, err, err)
                        continue
                    songs.append(song)
                    if progress and batch_files == 1:
                        bars[index] = tqdm(total=song.seconds, unit="s", desc=path.name, disable=None,
                                           mininterval=0, **bar_size(),
                                           bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]")
                if should_stop is not None and should_stop():
                    raise Cancelled("cancelled")
                for index, outcome in _step(songs, per_pass, bars):
                    outcomes[index] = outcome
                    if index in bars:
                        bars.pop(index).close()
                    return_freed_memory()  # what the finished song held
                while done in outcomes:
                    files_bar.update()
                    yield outcomes.pop(done)
                    done += 1
    except BaseException as err:
        for song in songs:
            song.fail(err)
        raise
    finally:
        for bar in bars.values():
            bar.close()


def separate_files(
    paths: Sequence[Union[str, Path]],
    outdir: Union[str, Path],
    model,
    batch_files: int = 1,
    debug: bool = False,
    **options,
) -> Iterator[FileResult]:
    """Separate files, one :data:`FileResult` per input in input order, a bad file's error as its one line.

    Args:
        paths: audio files (a folder gives the error ``folder holds no audio files``).
        outdir: the output folder, as in :func:`separate_file`.
        model (UNet): the loaded model.
        batch_files (int): songs advanced together. Default 1.
        debug (bool): a failed file's result keeps the traceback text.
        options: ``fmt``, ``force``, ``progress``, ``shared_passes``, ``budget`` and the separator
            settings, as in :func:`drive`.
    """
    paths = [Path(p) for p in paths]
    folders = {i for i, p in enumerate(paths) if p.is_dir()}
    files = [p for i, p in enumerate(paths) if i not in folders]
    outcomes = drive(files, outdir, model, batch_files, **options)
    for i, path in enumerate(paths):
        if i in folders:
            yield {"path": str(path), "stems": None, "error": "folder holds no audio files", "traceback": None,
                   "seconds": None, "elapsed": None}
            continue
        outcome = next(outcomes)
        if outcome.error is None:
            yield {"path": str(path), "stems": {name: str(p) for name, p in outcome.stems.items()}, "error": None,
                   "traceback": None, "seconds": outcome.seconds, "elapsed": outcome.elapsed}
        else:
            yield {"path": str(path), "stems": None, "error": one_line(outcome.error),
                   "traceback": "".join(traceback.format_exception(outcome.cause)) if debug else None,
                   "seconds": None, "elapsed": None}


def separate_file(path: Union[str, Path], outdir: Union[str, Path], model, fmt: Optional[str] = None,
                  force: bool = False, progress: bool = False, budget: Optional[WorkBudget] = None,
                  should_stop: Optional[Callable[[], bool]] = None, **options) -> Dict[str, Path]:
    """Separate one audio file into ``outdir/<name>/<stem>.<fmt>`` at its own rate and channel count.

    Reads and writes chunk by chunk (bounded memory); each stem is written to a temporary
    file renamed into place at the end, so an error or an interrupt leaves no partial stem.
    Existing stems are kept unless ``force``.

    Args:
        path: the audio file.
        outdir: the output folder.
        model (UNet): the loaded model.
        fmt (str): ``wav``, ``flac``, ``mp3``, ``ogg``, ``opus`` or ``m4a``; default: the input's own
            format when it is one of them, else wav.
        force (bool): overwrite existing stems.
        progress (bool): a progress bar in seconds of audio.
        budget (WorkBudget): refuse a song over it before decoding (None: no bound).
        should_stop (callable): asked before every chunk; True stops with :class:`Cancelled`,
            leaving no stem (None: never).
        options: ``sample_format`` (``int16``, ``int24`` or ``float32``, for wav and flac; default the
            input's own when it is lossless, else int16; integer stems clip at full scale), ``bitrate``
            (kbit/s of mp3 stems, default 320), ``filename`` (a template of :data:`FILENAME_FIELDS`,
            default :data:`DEFAULT_FILENAME`), ``model_label`` (its ``{model}``), ``stems`` (the stems
            to write, default all), ``offset`` and ``duration`` (seconds: separate that range only),
            and the :class:`~asteroid_unet.separator.Separator`'s ``device``, ``chunk_seconds``,
            ``precision``, ``full_band``, ``wiener_iterations``, ``tta``.

    Returns:
        dict stem name -> written path.

    Raises:
        AudioError: unreadable input, existing outputs, unwritable folder, NaN/Inf samples, over ``budget``,
        an unknown stem or a bad template.
    """
    (outcome,) = drive([Path(path)], outdir, model, 1, fmt, force, progress, budget=budget, should_stop=should_stop,
                       **options)
    if outcome.error is not None:
        raise outcome.error
    return outcome.stems
