"""The paper's training objective, shared by the Asteroid and SpeechBrain recipes."""
import torch

from .model import UNet


def masked_magnitude_l1(masks: torch.Tensor, mix_mag: torch.Tensor, target_mags: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between masked mix magnitudes and target magnitudes.

    Both magnitudes are divided by the mix patch's maximum, the scale the network sees.

    Args:
        masks: ``(batch, n_targets, bins, frames)`` in [0, 1].
        mix_mag: ``(batch, bins, frames)``.
        target_mags: ``(batch, n_targets, bins, frames)``.
    """
    peak = mix_mag.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-8).unsqueeze(1)
    return (masks * mix_mag.unsqueeze(1) / peak - target_mags / peak).abs().mean()


def unet_loss(model: UNet, mix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Paper loss for waveform chunks: ``mix (batch, time)``, ``targets (batch, n_targets, time)``.

    The chunk's frames (``model.patch_frames`` for ``model.patch_samples`` samples) form one patch.
    """
    if targets.shape[1] != len(model.targets):
        raise ValueError(f"Expected {len(model.targets)} targets {model.targets}, got {targets.shape[1]}")
    mix_mag = model.magnitude(mix)
    target_mags = model.magnitude(targets.flatten(0, 1)).unflatten(0, targets.shape[:2])
    masks = model.patch_masks(mix_mag.unsqueeze(1))
    return masked_magnitude_l1(masks, mix_mag, target_mags)


class UNetObjective(torch.nn.Module):
    """A model and its training loss as one module: ``objective(mix, targets)`` is ``loss(model, mix, targets)``.

    The loss calls the model's magnitude and patch methods, not its ``forward``; wrapped in this
    module, a wrapper that works through ``forward`` (``DistributedDataParallel``) covers it all.
    """

    def __init__(self, model: UNet, loss=unet_loss):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, mix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(self.model, mix, targets)
