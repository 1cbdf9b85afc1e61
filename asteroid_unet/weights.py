"""Finding and safely loading UNet weights: packaged default, file, hub folder or Hub repo id.

This module reads files only; the model class comes from Asteroid's registry
(``asteroid.models.get``), where importing ``asteroid_unet`` puts it.
"""
import pickle
import re
from importlib import resources
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn
from torch.torch_version import TorchVersion

DEFAULT_WEIGHTS = "unet_default.pth"
MODEL_NAME = "UNet"
# A name ending like a model file is a local path, never a Hub repo id.
MODEL_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".tar", ".zip")


class CheckpointError(ValueError):  # a ValueError, like Asteroid's own from_pretrained refusals
    """A model file that is not a loadable UNet package, with a one-line reason."""


def default_weights_path() -> Optional[Path]:
    """The weights shipped inside the package, or None when this build ships none."""
    path = Path(str(resources.files("asteroid_unet") / "weights" / DEFAULT_WEIGHTS))
    return path if path.is_file() else None


def resolve(spec: Union[str, Path]) -> Path:
    """A local file for ``spec``: a file, a hub folder holding ``pytorch_model.bin``, a URL, or a
    Hub repo id (``org/name[@rev]``); the last two through Asteroid's download cache."""
    from asteroid.utils.hub_utils import cached_download

    if str(spec).startswith(("http://", "https://")):
        try:
            return Path(cached_download(str(spec)))
        except Exception as err:  # network errors come in many types
            raise CheckpointError(f"{spec}: cannot download ({type(err).__name__})") from None
    path = Path(spec)
    if path.is_dir():
        path = path / "pytorch_model.bin"
        if not path.is_file():
            raise CheckpointError(f"{spec}: folder has no pytorch_model.bin")
        return path
    if path.is_file():
        return path
    if looks_like_repo_id(str(spec)):
        try:
            return Path(cached_download(str(spec)))
        except Exception as err:  # network, missing repo, offline cache miss
            raise CheckpointError(f"{spec}: cannot fetch from the Hugging Face Hub ({type(err).__name__})") from None
    raise CheckpointError(f"{spec}: no such file, folder or Hub repo id")


def looks_like_repo_id(spec: str) -> bool:
    """``org/name[@revision]`` that cannot be a local path: its ``org`` is no local folder and its
    ``name`` has no model-file suffix (``exp/best.pth`` is a missing file, not a download)."""
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        return False
    org, name = spec.split("/")
    name = name.split("@")[0]
    return bool(org and name) and not Path(org).is_dir() and not name.lower().endswith(MODEL_FILE_SUFFIXES)


def load_package(path: Union[str, Path]) -> dict:
    """Read an Asteroid model package with ``torch.load(weights_only=True)``: pickled code is refused."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        # TorchVersion (a str) is allowed: Asteroid's own serialize() stores torch.__version__.
        with torch.serialization.safe_globals([TorchVersion]):
            conf = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: {_refusal(str(err))}") from None
    except Exception as err:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(err).__name__})") from None
    if not isinstance(conf, dict) or not {"model_name", "model_args", "state_dict"} <= conf.keys():
        raise CheckpointError(f"{path}: not an Asteroid model package (needs model_name, model_args, state_dict)")
    if conf["model_name"] != MODEL_NAME:
        raise CheckpointError(f"{path}: a checkpoint for {str(conf['model_name'])[:60]}, not for UNet")
    return conf


def _refusal(message: str) -> str:
    """One line from torch's multi-paragraph weights-only error: the global it refused, if any."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found:
        return f"refused: it holds pickled code or objects ({found.group(1)}), only plain weights are loaded"
    detail = next((line.strip() for line in message.splitlines() if line.strip().startswith("Unsupported")), "")
    return f"refused: not a plain-weights PyTorch checkpoint{f' ({detail[:80]})' if detail else ''}"


def load_model(spec: Union[None, str, Path, nn.Module] = None) -> nn.Module:
    """A UNet from ``spec``: a model (returned as it is, mode and device untouched), a file, hub
    folder, URL or Hub repo id, or None for the packaged default weights. Loaded models are in eval mode.

    Raises:
        CheckpointError: no such file or repo, not a UNet package, or (for None) no packaged weights.
    """
    if isinstance(spec, nn.Module):
        return spec
    if spec is None:
        path = default_weights_path()
        if path is None:
            raise CheckpointError("this build of asteroid-unet ships no default weights: pass a model file or Hub repo id")
    else:
        path = resolve(spec)
    conf = load_package(path)
    from asteroid.models import get as registered_model

    try:
        return registered_model(MODEL_NAME).from_pretrained(conf).eval()
    except Exception as err:  # wrong args, shapes or types in a stranger's package: one line, not a traceback
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: weights do not fit a UNet ({reason})") from None
