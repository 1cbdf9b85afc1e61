"""The user API: separate waveforms and files with a model given as a UNet, a name, a file or a repo id."""
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

from . import files
from .budget import WorkBudget
from .model import UNet, load_model
from .separator import CHUNK_SECONDS, separator_for

ModelSpec = Union[None, str, Path, UNet]


def resolve_model(model: ModelSpec) -> UNet:
    """``model`` itself when it is a UNet, else :func:`~asteroid_unet.model.load_model` of it with its
    convolution weights in the layout inference uses (channels last), so that the separator's
    inference copy shares them instead of copying them (78 MB for Spleeter 2stems)."""
    return model if isinstance(model, UNet) else load_model(model).to(memory_format=torch.channels_last)


def separate(
    waveform: Union[torch.Tensor, np.ndarray],
    sample_rate: int,
    model: ModelSpec = None,
    device: Optional[str] = None,
    chunk_seconds: float = CHUNK_SECONDS,
    precision: str = "auto",
    full_band: Optional[bool] = None,
    wiener_iterations: Optional[int] = None,
    tta: Optional[bool] = None,
    budget: Optional[WorkBudget] = None,
    stems: Union[None, str, Sequence[str]] = None,
) -> Dict[str, torch.Tensor]:
    """Separate a waveform ``(time,)`` or ``(channels, time)`` at any rate into full-band stems.

    Args:
        waveform: the mix, float samples.
        sample_rate (int): its rate in Hz.
        model: a UNet, a model name (``"spleeter-2stems"``, ``"paper"``), a path / hub folder /
            repo id, or None for the default model.
        device, chunk_seconds, precision, full_band, wiener_iterations, tta: see
            :class:`~asteroid_unet.separator.Separator`; the last three default to the model's own
            settings (:func:`~asteroid_unet.separator.model_settings`).
        budget: a :class:`~asteroid_unet.budget.WorkBudget` the waveform must fit (None: no bound).
        stems: the stems to return, a name (``"vocals"``, ``"accompaniment"``) or names; default all.

    Returns:
        dict ``{"vocals": ..., "accompaniment": ...}`` of tensors shaped like ``waveform``,
        at ``sample_rate``; full band, they sum to the input.

    Raises:
        AudioError: a waveform over ``budget``, an unknown stem.
    """
    if budget is not None:
        shape = tuple(waveform.shape)
        budget.check(shape[-1] / sample_rate, shape[0] if len(shape) > 1 else 1, sample_rate)
    model = resolve_model(model)
    names = files.select_stems(model, stems)
    separator = separator_for(model, sample_rate, chunk_seconds=chunk_seconds, device=device,
                              precision=precision, full_band=full_band, wiener_iterations=wiener_iterations, tta=tta)
    return {name: stem for name, stem in separator.separate(waveform).items() if name in names}


def separate_file(
    path: Union[str, Path],
    outdir: Union[str, Path] = "separated",
    model: ModelSpec = None,
    fmt: Optional[str] = None,
    force: bool = False,
    device: Optional[str] = None,
    chunk_seconds: float = CHUNK_SECONDS,
    precision: str = "auto",
    progress: bool = False,
    full_band: Optional[bool] = None,
    wiener_iterations: Optional[int] = None,
    tta: Optional[bool] = None,
    budget: Optional[WorkBudget] = None,
    stems: Union[None, str, Sequence[str]] = None,
    **options,
) -> Dict[str, Path]:
    """Separate an audio file into ``outdir/<name>/<stem>.<fmt>`` at its own rate and channel count
    (:func:`asteroid_unet.files.separate_file`, with the model given as in :func:`separate`).

    ``stems`` selects the stems written, as in :func:`separate` (``stems="accompaniment"``: karaoke).
    ``options`` are :func:`asteroid_unet.files.separate_file`'s: ``sample_format``, ``bitrate``,
    ``filename``, ``model_label``, ``offset``, ``duration`` (``offset=30, duration=10`` separates the
    10 seconds from 0:30).

    Returns:
        dict stem name -> written path.

    Raises:
        AudioError: unreadable input, existing outputs, unwritable folder, NaN/Inf samples, a song
            over ``budget`` (a :class:`~asteroid_unet.budget.WorkBudget`, checked before decoding), an
            unknown stem.
        CheckpointError: a model that cannot be loaded.
    """
    return files.separate_file(path, outdir, resolve_model(model), fmt, force, progress, device=device,
                               chunk_seconds=chunk_seconds, precision=precision, full_band=full_band,
                               wiener_iterations=wiener_iterations, tta=tta, budget=budget, stems=stems,
                               **options)
