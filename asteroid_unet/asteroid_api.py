"""The model methods that Asteroid calls (``forward_wav``, ``separate``, ``file_separate``), for
:class:`~asteroid_unet.model.UNet`: the package's full-band stems instead of Asteroid's
``forward`` at the model's rate.

Asteroid's own module functions keep Asteroid's code: ``asteroid.separate.file_separate`` (what
``asteroid-infer`` runs) reads a file at the model's rate (``--resample``: its first channel at any
rate), separates it through :meth:`UNet.forward_wav`, rescales the stems to the input's energy and
writes each stem with ``soundfile.write``. So ``forward_wav`` takes any channel count, and gives a
multichannel input's stems as ``(time, channels)`` per stem, the layout soundfile writes.
:meth:`UNet.file_separate` and ``asteroid-unet separate`` give the full-band stems at the file's
own rate and channel count.
"""
import os
import tempfile
import warnings

import numpy as np
import torch

from .files import separate_file
from .separator import separator_for, stem_names


def separate_waveforms(model, wav, **settings) -> torch.Tensor:
    """Stems of waveforms at the model's rate, in the layout Asteroid's separation functions expect.

    ``(time,)`` -> ``(n_stems, time)``; ``(batch, time)`` and ``(batch, 1, time)`` ->
    ``(batch, n_stems, time)``, as ``UNet.forward``; ``(batch, channels, time)`` ->
    ``(batch, n_stems, time, channels)``: each stem as ``soundfile.write`` takes it, so that
    ``asteroid.separate.file_separate`` writes stereo files as stereo.
    The stems are those of :func:`~asteroid_unet.separator.stem_names`, on the input's device; one
    separator serves every item. ``settings``: the :class:`~asteroid_unet.separator.Separator`'s
    (``wiener_iterations``, ``tta``, ...; the model's own settings where not given).
    """
    wav = torch.as_tensor(wav)
    if wav.ndim not in (1, 2, 3):
        raise ValueError(f"Expected (time,), (batch, time) or (batch, channels, time), got {tuple(wav.shape)}")
    items = wav.reshape(-1, 1 if wav.ndim < 3 else wav.shape[1], wav.shape[-1])  # (batch, channels, time)
    names = stem_names(model)
    separator = separator_for(model, int(model.sample_rate), **settings)
    out = torch.stack([
        torch.stack([stems[name] for name in names]) for stems in map(separator.separate, items.cpu())
    ]) if items.shape[0] else items.new_zeros(0, len(names), *items.shape[1:])  # (batch, n_stems, channels, time)
    out = out.to(wav.device)
    if wav.ndim == 1:
        return out[0, :, 0]
    if wav.ndim == 2 or wav.shape[1] == 1:
        return out[:, :, 0]
    return out.transpose(-1, -2)


def separate_like_asteroid(model, wav, output_dir=None, force_overwrite=False):
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


def file_separate(model, filename, output_dir=None, force_overwrite=False) -> None:
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
        written = separate_file(filename, tmp, model, fmt="wav", force=True, sample_format="float32")
        for name, target in zip(stem_names(model), targets):
            os.replace(written[name], target)
