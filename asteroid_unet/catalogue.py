"""Separating many files: one result per file, failures kept per file, in worker processes.

The same per-file step serves ``asteroid-unet separate`` (``--jobs N``: N local worker
processes) and the Ray Data path (:mod:`asteroid_unet.ray_separate`), so every path
writes the same stems and reports the same one-line errors.
"""
import traceback
from pathlib import Path
from typing import Dict, Iterable, Iterator, Union

from .audio import AudioError
from .parallel import ordered_map
from .separate import separate_file
from .pretrained import load_model

FileResult = Dict[str, object]  # {"path": str, "stems": {name: str} or None, "error": str or None, "traceback": str or None}

_worker: dict = {}  # per worker process: the model and the options of separate_file


def one_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type's name."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def separate_or_report(path: Union[str, Path], outdir: Union[str, Path], model, debug: bool = False,
                       **options) -> FileResult:
    """:func:`~asteroid_unet.separate.separate_file` on one input; an error becomes the result's one-line
    ``error`` (with the ``traceback`` text when ``debug``) instead of an exception. Interrupts still raise."""
    path = Path(path)
    try:
        if path.is_dir():
            raise AudioError("folder holds no audio files")
        stems = separate_file(path, outdir, model, **options)
        return {"path": str(path), "stems": {name: str(p) for name, p in stems.items()}, "error": None, "traceback": None}
    except Exception as err:
        return {"path": str(path), "stems": None, "error": one_line(err),
                "traceback": traceback.format_exc() if debug else None}


def start_worker(model, outdir: str, debug: bool, options: dict) -> None:
    """Load the model once per worker process (a path, hub id or None: see :func:`load_model`)."""
    _worker.update(model=load_model(model), outdir=outdir, debug=debug, options=options)


def _separate_in_worker(path: str) -> FileResult:
    return separate_or_report(path, _worker["outdir"], _worker["model"], _worker["debug"], **_worker["options"])


def separate_files(paths: Iterable[Union[str, Path]], outdir: Union[str, Path], model=None, jobs: int = 1,
                   debug: bool = False, batch_files: int = 1, **options) -> Iterator[FileResult]:
    """Yield one :class:`FileResult` per input, in order; ``jobs`` files at once in worker processes,
    or ``batch_files`` songs in step sharing the network's passes (:mod:`asteroid_unet.batch`).

    Each worker loads the model once and shares the cores with the others; the stems are the
    same bytes as with one process. With ``jobs`` 1 everything runs here and ``model`` may
    also be a loaded UNet.

    Args:
        paths: audio files (a folder gives the error ``folder holds no audio files``).
        outdir: output folder, as in :func:`~asteroid_unet.separate.separate_file`.
        model: a model file, hub folder or repo id, or None (packaged weights).
        jobs (int): worker processes. Default 1.
        batch_files (int): songs separated together in this process (with ``jobs`` 1). Default 1.
        options: ``fmt``, ``force``, ``device``, ``chunk_seconds``, ``precision``, ``progress``
            for :func:`~asteroid_unet.separate.separate_file`.
    """
    paths = [str(p) for p in paths]
    if batch_files > 1:
        if jobs > 1:
            raise ValueError("batch_files > 1 runs in this process: use it with jobs 1")
        from .batch import separate_batched

        yield from separate_batched(paths, outdir, model, batch_files, debug=debug, **options)
        return
    if jobs > 1:
        options = dict(options, progress=False)  # bars from several processes would interleave
    yield from ordered_map(_separate_in_worker, paths, jobs, start_worker, (model, str(outdir), debug, options))
