"""UNet in Asteroid's own entry points: ``asteroid.models``, ``separate`` and ``asteroid-infer``.

Asteroid separates a file by resampling its first channel to the model's rate, and rescales
every output to the input's energy. For a :class:`~asteroid_unet.model.UNet` these entry
points give the stems of :func:`asteroid_unet.separate` instead, the same as the
``asteroid-unet`` command: full band, at the file's own rate and channel count.
"""
import functools
import os
import tempfile
import warnings

import numpy as np
import torch

from .model import UNet
from .separate import separate, separate_file, stem_names


def register() -> None:
    """Register UNet with ``asteroid.models`` and route Asteroid's file separation of a UNet
    (``asteroid.separate.file_separate``, used by ``asteroid-infer``) to :func:`file_separate`.

    Other models keep Asteroid's own behaviour. Safe to call more than once.
    """
    from asteroid import models
    from asteroid import separate as asteroid_separate

    if "UNet" not in vars(models):
        models.register_model(UNet)
    original = asteroid_separate.file_separate
    if getattr(original, "routes_unet", False):
        return

    @functools.wraps(original)
    def routed(model, filename, *args, **kwargs):
        if isinstance(model, UNet):
            return model.file_separate(filename, *args, **kwargs)
        return original(model, filename, *args, **kwargs)

    routed.routes_unet = True
    asteroid_separate.file_separate = routed


def separate_waveforms(model: UNet, wav) -> torch.Tensor:
    """Stems of waveforms at the model's rate, shaped like ``UNet.forward``'s output.

    ``(time,)`` -> ``(n_stems, time)``; ``(batch, time)`` and ``(batch, 1, time)`` ->
    ``(batch, n_stems, time)``; ``(batch, channels, time)`` -> ``(batch, n_stems, channels, time)``.
    The stems are those of :func:`~asteroid_unet.separate.stem_names`, on the input's device.
    """
    wav = torch.as_tensor(wav)
    if wav.ndim not in (1, 2, 3):
        raise ValueError(f"Expected (time,), (batch, time) or (batch, channels, time), got {tuple(wav.shape)}")
    items = wav.reshape(-1, 1 if wav.ndim < 3 else wav.shape[1], wav.shape[-1])  # (batch, channels, time)
    names = stem_names(model)
    out = torch.stack([
        torch.stack([stems[name] for name in names]) for stems in
        (separate(item, int(model.sample_rate), model) for item in items.cpu())
    ]) if items.shape[0] else items.new_zeros(0, len(names), *items.shape[1:])  # (batch, n_stems, channels, time)
    out = out.to(wav.device)
    if wav.ndim == 1:
        return out[0, :, 0]
    if wav.ndim == 2 or wav.shape[1] == 1:
        return out[:, :, 0]
    return out


def separate_like_asteroid(model: UNet, wav, output_dir=None, force_overwrite=False):
    """``BaseModel.separate`` for a UNet: files through :func:`file_separate`, tensors and arrays
    through :func:`separate_waveforms` (arrays in, arrays out)."""
    if isinstance(wav, (str, os.PathLike)):
        return file_separate(model, wav, output_dir, force_overwrite)
    if isinstance(wav, np.ndarray):
        return separate_waveforms(model, torch.from_numpy(wav)).numpy()
    if isinstance(wav, torch.Tensor):
        with torch.no_grad():
            return separate_waveforms(model, wav)
    raise ValueError(f"Only support filenames, numpy arrays and torch tensors, received {type(wav)}")


def file_separate(model: UNet, filename, output_dir=None, force_overwrite=False) -> None:
    """Write ``<name>_est<i>.wav`` (Asteroid's names, stems in :func:`stem_names` order) next to
    ``filename`` or in ``output_dir``: full band, at the file's rate and channel count."""
    base = os.path.splitext(str(filename))[0]
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        base = os.path.join(str(output_dir), os.path.basename(base))
    targets = [f"{base}_est{i}.wav" for i in range(1, len(stem_names(model)) + 1)]
    if os.path.isfile(targets[0]) and not force_overwrite:
        warnings.warn(f"File {targets[0]} already exists, pass `force_overwrite=True` to overwrite it", UserWarning)
        return
    with tempfile.TemporaryDirectory(dir=os.path.dirname(base) or ".", prefix=".asteroid-unet-") as tmp:
        written = separate_file(filename, tmp, model, fmt="wav", force=True)
        for name, target in zip(stem_names(model), targets):
            os.replace(written[name], target)
