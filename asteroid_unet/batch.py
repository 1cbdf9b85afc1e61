"""Separating several files together: their patches share the network's passes (for GPUs).

A 7-second song makes only a few patches; a GPU runs hundreds in one pass. Here up to
``batch_files`` songs advance chunk by chunk in step, and each step sends the patches that
all of them need through the U-Net together; a finished song's place goes to the next file.
Everything else is per song, as in :func:`~asteroid_unet.separate.separate_file`: reading,
the full-band masking, the all-or-none stem files, and the one-line error of a bad file,
which does not stop the others. On the CPU the stems are the same bytes as one file at a time.
"""
import traceback
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Union

import torch
from tqdm import tqdm

from .audio import AudioError, AudioReader
from .catalogue import FileResult, one_line
from .model import UNet
from .pretrained import load_model
from .separate import CHUNK_SECONDS, TTA, WIENER_ITERATIONS, Separator, SongOutput, SongPass, output_format, stem_names, stem_targets

GPU_PATCH_VALUES = 256 * 512 * 128  # 256 patches of the paper's size (512 bins x 128 frames, mono) per GPU pass


def gpu_patches_per_pass(model: UNet) -> int:
    """Patches per network call on a GPU: as many as hold the values of 256 paper-size patches (16 of
    Spleeter's stereo 1024 x 512 ones), at least the model's ``patch_batch``."""
    values = model.audio_channels * model.n_bins * model.patch_frames
    return max(model.patch_batch, GPU_PATCH_VALUES // values)


class _Song:
    """One open input: its reader, stem output, pass through its rate's separator, and next chunk."""

    def __init__(self, index: int, path: Path, outdir, model: UNet, separators: Dict[int, Separator], fmt: Optional[str],
                 force: bool, separator_options: dict):
        self.index, self.path = index, path
        if path.is_dir():
            raise AudioError("folder holds no audio files")
        fmt = output_format(path, fmt)
        targets = stem_targets(path, outdir, stem_names(model), fmt, force)
        self.reader = AudioReader(path)
        try:
            if self.reader.frames == 0:
                raise AudioError("no samples in file")
            rate = self.reader.sample_rate  # one separator (an inference copy of the model) per rate, not per song
            if rate not in separators:
                separators[rate] = Separator(model, rate, **separator_options)
            self.separator = separators[rate]
            self.song_pass = SongPass(self.separator, self.reader.read, self.reader.frames)
            self.output = SongOutput(targets, rate, self.reader.channels, fmt)
        except BaseException:
            self.reader.close()
            raise
        self.next_chunk = 0

    def finished(self) -> Dict[str, Path]:
        self.reader.close()
        return self.output.commit()

    def fail(self, err: BaseException, debug: bool = False, reported: Optional[BaseException] = None) -> FileResult:
        """Close the input, undo the output, and give the result: ``reported``'s line, or ``err``'s (a write
        error as ``cannot write stems (...)``), with ``err``'s traceback when ``debug``."""
        self.reader.close()
        try:
            self.output.abort(err)
        except BaseException as raised:  # abort raises err, or err as a one-line AudioError
            reported = reported or raised
        return _failure(self.path, reported or err, err, debug)


def _failure(path: Path, reported: BaseException, err: BaseException, debug: bool) -> FileResult:
    return {"path": str(path), "stems": None, "error": one_line(reported),
            "traceback": "".join(traceback.format_exception(err)) if debug else None}


def _step(songs: List[_Song], results: Dict[int, FileResult], per_pass: Optional[int], debug: bool) -> None:
    """One chunk of every open song, their patches through :meth:`Separator.patch_masks` together (in
    shared passes with ``per_pass``); finished and failed songs get their result and leave ``songs``."""
    pending = []
    for song in list(songs):
        try:
            pending.append((song, song.song_pass.prepare(song.song_pass.chunks[song.next_chunk])))
        except Exception as err:
            songs.remove(song)
            results[song.index] = song.fail(err, debug)
    if not pending:
        return
    try:
        masks = pending[0][0].separator.patch_masks([chunk.todo for _, chunk in pending], per_pass)
    except Exception as err:  # the network failed (out of GPU memory, say): the step's songs fail with its line
        for song, _ in pending:
            songs.remove(song)
            results[song.index] = song.fail(err, debug, reported=err)
        return
    for (song, chunk), song_masks in zip(pending, masks):
        try:
            song.output.write(song.song_pass.finish(chunk, song_masks))
            song.next_chunk += 1
            if song.next_chunk == len(song.song_pass.chunks):
                songs.remove(song)
                stems = song.finished()
                results[song.index] = {"path": str(song.path), "stems": {name: str(p) for name, p in stems.items()},
                                       "error": None, "traceback": None}
        except Exception as err:
            if song in songs:
                songs.remove(song)
            results[song.index] = song.fail(err, debug)


def separate_batched(
    paths: Sequence[Union[str, Path]],
    outdir: Union[str, Path] = "separated",
    model: Union[None, str, UNet] = None,
    batch_files: int = 8,
    fmt: Optional[str] = None,
    force: bool = False,
    device: Optional[str] = None,
    chunk_seconds: float = CHUNK_SECONDS,
    precision: str = "float32",
    progress: bool = False,
    full_band: bool = True,
    wiener_iterations: int = WIENER_ITERATIONS,
    tta: bool = TTA,
    debug: bool = False,
    shared_passes: Optional[bool] = None,
) -> Iterator[FileResult]:
    """Separate files with up to ``batch_files`` songs in step, their patches through the network together.

    Yields one :data:`~asteroid_unet.catalogue.FileResult` per input, in input order. Songs may
    differ in rate, channels and length. An interrupt leaves no partial stem.

    Args:
        paths: audio files (a folder gives the error ``folder holds no audio files``).
        outdir, fmt, force, device, chunk_seconds, precision, full_band, wiener_iterations, tta: as in
            :func:`~asteroid_unet.separate.separate_file`.
        model: a UNet, a model name, a path / hub folder / repo id, or None (packaged weights).
        batch_files (int): songs advanced together. Default 8.
        progress (bool): a progress bar over the files.
        debug (bool): a failed file's result keeps the traceback text.
        shared_passes (bool): one network pass for the patches of all the songs of a step, up to
            :func:`gpu_patches_per_pass` per call; else each song's patches in calls of their own, the
            bytes of one file at a time. Default: on a GPU only.
    """
    model = load_model(model)
    paths = [Path(p) for p in paths]
    separator_options = dict(chunk_seconds=chunk_seconds, device=device, precision=precision, full_band=full_band,
                             wiener_iterations=wiener_iterations, tta=tta)
    if shared_passes is None:
        shared_passes = torch.device(device or next(model.parameters()).device).type != "cpu"
    per_pass = gpu_patches_per_pass(model) if shared_passes else None
    separators: Dict[int, Separator] = {}
    results: Dict[int, FileResult] = {}
    songs: List[_Song] = []
    waiting = iter(enumerate(paths))
    done = 0
    bar = tqdm(total=len(paths), unit="file", disable=None if progress else True)
    try:
        with bar:
            while done < len(paths):
                while len(songs) < max(1, batch_files) and (item := next(waiting, None)) is not None:
                    index, path = item
                    try:
                        songs.append(_Song(index, path, outdir, model, separators, fmt, force, separator_options))
                    except Exception as err:
                        results[index] = _failure(path, err, err, debug)
                _step(songs, results, per_pass, debug)
                while done in results:
                    bar.update()
                    yield results.pop(done)
                    done += 1
    except BaseException as err:  # an interrupt, or the caller stopped early: no partial stem stays
        for song in songs:
            song.fail(err)
        raise
