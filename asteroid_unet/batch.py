"""Separating several files together: their patches go through the network in shared batches (for GPUs).

A 7-second song makes only a few 128-frame patches; a GPU runs hundreds at once. Here
``batch_files`` songs advance chunk by chunk in step, and each step sends the patches of all
of them through the U-Net in one pass. Everything else is per song, as in
:func:`~asteroid_unet.separate.separate_file`: reading, the full-band masking, the
all-or-none stem files and the one-line error of a bad file, which does not stop the others.
On the CPU the stems are the same bytes as one file at a time.
"""
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

from .audio import AudioError, AudioReader
from .catalogue import FileResult, one_line
from .separate import Separator, SongOutput, output_format, output_name, stem_names
from .weights import load_model


class _Song:
    """One open song of a batch: its reader, separator, stem output and chunk plan."""

    def __init__(self, path: Path, outdir, model, fmt: Optional[str], force: bool, separators: dict, device,
                 chunk_seconds, precision):
        self.path = path
        if path.is_dir():
            raise AudioError("folder holds no audio files")
        fmt = output_format(path, fmt)
        existing = [p for p in (Path(outdir) / output_name(path) / f"{n}.{fmt}" for n in stem_names(model)) if p.exists()]
        if existing and not force:
            raise AudioError(f"output exists ({existing[0]}); use --force to overwrite")
        self.reader = AudioReader(path)
        self.output = None
        try:
            if self.reader.frames == 0:
                raise AudioError("no samples in file")
            rate = self.reader.sample_rate  # one Separator (and inference copy of the model) per rate, not per song
            if rate not in separators:
                separators[rate] = Separator(model, rate, chunk_seconds, device, precision)
            self.separator = separators[rate]
            self.plan = self.separator.plan(self.reader.frames)
            self.output = SongOutput(path, outdir, self.separator.names, fmt, force, self.reader.sample_rate,
                                     self.reader.channels)
        except BaseException:
            self.reader.close()
            raise

    def fail(self, err: BaseException) -> str:
        """Undo this song's output and return the one-line reason."""
        self.reader.close()
        try:
            self.output.abort(err)
        except BaseException as raised:  # abort re-raises err (an OS error as "cannot write stems (...)")
            return one_line(raised if isinstance(err, OSError) else err)
        return one_line(err)


def _separate_group(songs: List[_Song], results: dict) -> None:
    """Run the songs chunk by chunk in step, one network pass per step, into ``results[path]``."""
    alive = list(songs)
    step = 0
    while alive:
        ready = []
        for song in [s for s in alive if step < len(s.plan)]:
            try:
                start, stop, seg_start, seg_stop = song.plan[step]
                x, first_frame = song.separator.read_segment(song.reader.read, seg_start, seg_stop)
                magnitude, skip = song.separator.magnitude(x, first_frame)
                ready.append((song, x, magnitude, skip, slice(start - seg_start, stop - seg_start)))
            except Exception as err:
                results[song.path] = _failure(song.path, song.fail(err))
                alive.remove(song)
        if ready:
            masks = ready[0][0].separator.masks([magnitude for _, _, magnitude, _, _ in ready])
            for (song, x, _, skip, core), song_masks in zip(ready, masks):
                try:
                    stems = song.separator.apply_masks(x, song_masks, skip, core)
                    song.output.write({name: s.cpu() for name, s in stems.items()})
                except Exception as err:
                    results[song.path] = _failure(song.path, song.fail(err))
                    alive.remove(song)
        step += 1
        for song in [s for s in alive if step >= len(s.plan)]:
            alive.remove(song)
            song.reader.close()
            try:
                written = song.output.commit()
                results[song.path] = {"path": str(song.path), "stems": {n: str(p) for n, p in written.items()},
                                      "error": None, "traceback": None}
            except Exception as err:
                results[song.path] = _failure(song.path, one_line(err))


def _failure(path: Path, reason: str) -> FileResult:
    return {"path": str(path), "stems": None, "error": reason, "traceback": None}


def separate_batched(
    paths: Sequence[Union[str, Path]],
    outdir: Union[str, Path] = "separated",
    model=None,
    batch_files: int = 8,
    fmt: Optional[str] = None,
    force: bool = False,
    device: Optional[str] = None,
    chunk_seconds: float = 60.0,
    precision: str = "float32",
) -> Iterator[FileResult]:
    """Separate files ``batch_files`` at a time, their patches through the network together.

    Yields one :data:`~asteroid_unet.catalogue.FileResult` per input, in order. The songs
    of a batch share each network pass, so they need one model rate and patch grid but may
    differ in rate, channels and length. Songs at different rates are batched too: the masks
    are computed at the model's rate.

    Args:
        paths: audio files.
        outdir, fmt, force, device, chunk_seconds, precision: as in
            :func:`~asteroid_unet.separate.separate_file`.
        model: a UNet, a path / hub folder / repo id, or None (packaged weights).
        batch_files (int): songs advanced together. Default 8.
    """
    model = load_model(model)
    paths = [Path(p) for p in paths]
    separators: dict = {}
    for first in range(0, len(paths), max(1, batch_files)):
        group = paths[first : first + max(1, batch_files)]
        results, songs = {}, []
        for path in group:
            try:
                songs.append(_Song(path, outdir, model, fmt, force, separators, device, chunk_seconds, precision))
            except Exception as err:
                results[path] = _failure(path, one_line(err))
        try:
            _separate_group(songs, results)
        except BaseException as err:  # the shared pass failed (out of GPU memory, ...) or an interrupt
            for song in songs:
                if song.path not in results:
                    results[song.path] = _failure(song.path, song.fail(err))
            if not isinstance(err, Exception):
                raise
        for path in group:
            yield results[path]
