"""Songs from files to stem files: the one driver of a song's life cycle.

Read, separate chunk by chunk, write every stem all or none, and fail per file: one song or
many. With ``batch_files`` above 1, songs advance chunk by chunk in step and each step sends the
patches that all of them need through the U-Net together (one pass on a GPU; on the CPU each
song's patches keep calls of their own, so the stems are the bytes of one file at a time).
Everything here takes a loaded model; :mod:`asteroid_unet.separate` and the command line resolve
names and paths.
"""
import os
import traceback
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from tqdm import tqdm

from .audio import AUDIO_EXTENSIONS, OUTPUT_FORMATS, AtomicWriter, AudioError, AudioReader
from .budget import WorkBudget
from .errors import one_line
from .memory import return_freed_memory
from .separator import SongPass, separator_for, stem_names

FileResult = Dict[str, object]  # {"path": str, "stems": {name: str} or None, "error": str or None, "traceback": str or None}
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


class SongOutput:
    """The stems of one song, written all or none to ``targets`` (see :func:`stem_targets`).

    Creates the song folder and removes temporary files a killed earlier run left; stems go to
    hidden temporary files (:class:`~asteroid_unet.audio.AtomicWriter`). :meth:`commit` renames
    them all into place; :meth:`abort` (or an error in :meth:`commit`) leaves no stem and no
    empty song folder behind.
    """

    def __init__(self, targets: Dict[str, Path], sample_rate: int, channels: int, fmt: str):
        self.targets = targets
        self.song_dir = next(iter(targets.values())).parent
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
    """``fmt``, or the input's own format when it is an output format, else wav; AudioError if unknown."""
    fmt = fmt or (path.suffix.lower().lstrip(".") if path.suffix.lower().lstrip(".") in OUTPUT_FORMATS else "wav")
    if fmt not in OUTPUT_FORMATS:
        raise AudioError(f"unknown output format {fmt!r}; choose from {', '.join(sorted(OUTPUT_FORMATS))}")
    return fmt


def stem_targets(path: Path, outdir: Union[str, Path], names: List[str], fmt: str, force: bool) -> Dict[str, Path]:
    """``{stem: outdir/<song>/<stem>.<fmt>}``; AudioError if one exists, unless ``force``."""
    targets = {name: Path(outdir) / output_name(path) / f"{name}.{fmt}" for name in names}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not force:
        raise AudioError(f"output exists ({existing[0]}); use --force to overwrite")
    return targets


def gpu_patches_per_pass(model) -> int:
    """Patches per network call on a GPU: as many as hold the values of 256 paper-size patches (16 of
    Spleeter's stereo 1024 x 512 ones), at least the model's ``patch_batch``."""
    values = model.audio_channels * model.n_bins * model.patch_frames
    return max(model.patch_batch, GPU_PATCH_VALUES // values)


class _Song:
    """One open input: its reader, stem output, pass through its rate's separator, and next chunk."""

    def __init__(self, index: int, path: Path, outdir, model, fmt: Optional[str], force: bool, settings: dict,
                 budget: Optional[WorkBudget] = None):
        self.index, self.path = index, path
        fmt = output_format(path, fmt)
        targets = stem_targets(path, outdir, stem_names(model), fmt, force)
        if budget is not None:
            budget.check_file(path)  # from the header, before decoding
        self.reader = AudioReader(path)
        try:
            if self.reader.frames == 0:
                raise AudioError("no samples in file")
            if budget is not None:  # a header without a length: checked once decoded
                budget.check(self.seconds, self.reader.channels, self.reader.sample_rate)
            self.separator = separator_for(model, self.reader.sample_rate, **settings)
            self.song_pass = SongPass(self.separator, self.reader.read, self.reader.frames)
            self.output = SongOutput(targets, self.reader.sample_rate, self.reader.channels, fmt)
        except BaseException:
            self.reader.close()
            raise
        self.next_chunk = 0

    @property
    def seconds(self) -> float:
        return self.reader.frames / self.reader.sample_rate

    def finished(self) -> Dict[str, Path]:
        self.reader.close()
        return self.output.commit()

    def fail(self, err: BaseException) -> BaseException:
        """Close the input and undo the output; returns what to report: ``err``, or a write error
        as a one-line ``AudioError``."""
        self.reader.close()
        try:
            self.output.abort(err)
        except BaseException as raised:  # abort raises err, or err as a one-line AudioError
            return raised
        return err


class Outcome(NamedTuple):
    """What became of one input: its stems, or the error to report (``cause`` is the one raised)."""

    path: Path
    stems: Optional[Dict[str, Path]]
    error: Optional[BaseException] = None
    cause: Optional[BaseException] = None


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
            song.output.write(stems)
            if song.index in bars:
                bars[song.index].update(stems[song.separator.names[0]].shape[-1] / song.reader.sample_rate)
            song.next_chunk += 1
            if song.next_chunk == len(song.song_pass.chunks):
                songs.remove(song)
                outcomes.append((song.index, Outcome(song.path, song.finished())))
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
    **settings,
) -> Iterator[Outcome]:
    """Yield the :class:`Outcome` of every input, in input order, with up to ``batch_files`` songs in
    step; ``settings`` are the :class:`~asteroid_unet.separator.Separator`'s (``device``, ``chunk_seconds``,
    ``precision``, ``full_band``, ``wiener_iterations``, ``tta``). A song over ``budget`` (a
    :class:`~asteroid_unet.budget.WorkBudget`, None: none) fails with its one line before it is
    decoded. An interrupt, or a caller that stops early, leaves no partial stem. The memory a song
    freed goes back to the system when it ends."""
    device = settings.get("device")
    if shared_passes is None:
        shared_passes = torch.device(device or next(model.parameters()).device).type != "cpu"
    per_pass = gpu_patches_per_pass(model) if shared_passes else None
    outcomes: Dict[int, Outcome] = {}
    songs: List[_Song] = []
    bars: Dict[int, tqdm] = {}
    waiting = iter(enumerate(paths))
    done = 0
    files_bar = tqdm(total=len(paths), unit="file", disable=None if progress and batch_files > 1 else True)
    try:
        with files_bar:
            while done < len(paths):
                while len(songs) < max(1, batch_files) and (item := next(waiting, None)) is not None:
                    index, path = item
                    try:
                        song = _Song(index, path, outdir, model, fmt, force, settings, budget)
                    except Exception as err:
                        outcomes[index] = Outcome(path, None, err, err)
                        continue
                    songs.append(song)
                    if progress and batch_files == 1:
                        bars[index] = tqdm(total=song.seconds, unit="s", desc=path.name, disable=None,
                                           bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]")
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
            yield {"path": str(path), "stems": None, "error": "folder holds no audio files", "traceback": None}
            continue
        outcome = next(outcomes)
        if outcome.error is None:
            yield {"path": str(path), "stems": {name: str(p) for name, p in outcome.stems.items()}, "error": None,
                   "traceback": None}
        else:
            yield {"path": str(path), "stems": None, "error": one_line(outcome.error),
                   "traceback": "".join(traceback.format_exception(outcome.cause)) if debug else None}


def separate_file(path: Union[str, Path], outdir: Union[str, Path], model, fmt: Optional[str] = None,
                  force: bool = False, progress: bool = False, budget: Optional[WorkBudget] = None,
                  **settings) -> Dict[str, Path]:
    """Separate one audio file into ``outdir/<name>/<stem>.<fmt>`` at its own rate and channel count.

    Reads and writes chunk by chunk (bounded memory); each stem is written to a temporary
    file renamed into place at the end, so an error or an interrupt leaves no partial stem.
    Existing stems are kept unless ``force``.

    Args:
        path: the audio file.
        outdir: the output folder.
        model (UNet): the loaded model.
        fmt (str): ``wav``, ``flac`` or ``mp3``; default: the input's own format when it is one of
            them, else wav.
        force (bool): overwrite existing stems.
        progress (bool): a progress bar in seconds of audio.
        budget (WorkBudget): refuse a song over it before decoding (None: no bound).
        settings: the :class:`~asteroid_unet.separator.Separator`'s ``device``, ``chunk_seconds``,
            ``precision``, ``full_band``, ``wiener_iterations``, ``tta``.

    Returns:
        dict stem name -> written path.

    Raises:
        AudioError: unreadable input, existing outputs, unwritable folder, NaN/Inf samples, over ``budget``.
    """
    (outcome,) = drive([Path(path)], outdir, model, 1, fmt, force, progress, budget=budget, **settings)
    if outcome.error is not None:
        raise outcome.error
    return outcome.stems
