"""Separating many files in local worker processes (``asteroid-unet separate --jobs N``).

Each worker receives the loaded model once and runs the file driver
(:func:`asteroid_unet.files.separate_files`) on its share of the files, so every path writes
the same stems and reports the same one-line errors as one process.
"""
from pathlib import Path
from typing import Iterable, Iterator, Union

from . import files
from .files import FileResult
from .parallel import ordered_map

_worker: dict = {}  # per worker process: the model and the driver's options


def start_worker(model, outdir: str, debug: bool, options: dict) -> None:
    """Keep the model (sent once per worker process) and the options for :func:`_separate_in_worker`."""
    _worker.update(model=model, outdir=outdir, debug=debug, options=options)


def _separate_in_worker(path: str) -> FileResult:
    return next(files.separate_files([path], _worker["outdir"], _worker["model"], debug=_worker["debug"],
                                     **_worker["options"]))


def separate_files(paths: Iterable[Union[str, Path]], outdir: Union[str, Path], model, jobs: int = 1,
                   debug: bool = False, batch_files: int = 1, **options) -> Iterator[FileResult]:
    """Yield one :data:`~asteroid_unet.files.FileResult` per input, in order: ``jobs`` files at once in
    worker processes, or here with ``batch_files`` songs in step (:func:`asteroid_unet.files.separate_files`).

    Args:
        paths: audio files (a folder gives the error ``folder holds no audio files``).
        outdir: output folder.
        model (UNet): the loaded model, sent once to each worker.
        jobs (int): worker processes. Default 1 (this process).
        debug (bool): failed files keep their traceback text.
        batch_files (int): songs separated together, with ``jobs`` 1. Default 1.
        options: ``fmt``, ``force``, ``progress`` and the separator settings of the driver.
    """
    paths = [str(p) for p in paths]
    if jobs <= 1:
        yield from files.separate_files(paths, outdir, model, batch_files, debug, **options)
        return
    if batch_files > 1:
        raise ValueError("batch_files > 1 runs in this process: use it with jobs 1")
    options = dict(options, progress=False)  # bars from several processes would interleave
    yield from ordered_map(_separate_in_worker, paths, jobs, start_worker, (model, str(outdir), debug, options))
