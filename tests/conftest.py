import pytest
import torch

import asteroid_unet


@pytest.fixture
def small_model():
    """A fast, non-default UNet for tests that need a model but not the paper size."""
    torch.manual_seed(0)
    return asteroid_unet.UNet(n_layers=4, first_channels=4, patch_frames=32, patch_hop=16, n_bins=128).eval()
