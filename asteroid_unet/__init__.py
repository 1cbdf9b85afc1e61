"""asteroid-unet: singing voice separation with the deep U-Net of Jansson et al. (ISMIR 2017).

Importing the package registers :class:`UNet` with ``asteroid.models``, so
``asteroid.models.get("UNet")``, ``BaseModel.from_pretrained`` and ``asteroid-infer`` find
it, and Asteroid's file separation of a UNet gives the package's full-band stems
(see :mod:`asteroid_unet.asteroid_api`).
"""
from .loss import masked_magnitude_l1, unet_loss
from .model import UNet
from .separate import separate, separate_file
from .pretrained import load_model
from .asteroid_api import register as _register_with_asteroid

__version__ = "0.1.0"

_register_with_asteroid()

__all__ = ["UNet", "load_model", "separate", "separate_file", "masked_magnitude_l1", "unet_loss", "__version__"]
