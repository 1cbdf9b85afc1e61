"""asteroid-unet: singing voice separation with the deep U-Net of Jansson et al. (ISMIR 2017).

Importing the package registers :class:`UNet` with ``asteroid.models`` (Asteroid's convention), so
``asteroid.models.get("UNet")``, ``BaseModel.from_pretrained`` and ``asteroid-infer`` find it.
"""
from asteroid import models as _asteroid_models

from .loss import masked_magnitude_l1, unet_loss
from .model import UNet, load_model
from .separate import separate, separate_file
from . import spleeter  # noqa: F401  (registers the first-use build of the spleeter-2stems weights)

__version__ = "0.1.0"

if "UNet" not in vars(_asteroid_models):
    _asteroid_models.register_model(UNet)

__all__ = ["UNet", "load_model", "separate", "separate_file", "masked_magnitude_l1", "unet_loss", "__version__"]
