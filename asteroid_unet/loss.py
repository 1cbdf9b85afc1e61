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


def unet_loss(model: UNet, mix: torch.Tensor, targets: torch.Tensor, masks: str = "network") -> torch.Tensor:
    """Training loss for waveform chunks: ``mix (batch, [channels,] time)``, ``targets (batch, n_targets,
    [channels,] time)``, the channel axes for a model with ``audio_channels > 1``.

    The chunk's first ``model.patch_frames`` frames form one patch. The loss is the L1 distance
    between each target's network output times the mix magnitude and the target's magnitude:
    the paper's, with both magnitudes divided by the patch maximum when the model normalises its
    patches (``patch_norm``), and Spleeter's ``L1_mask`` loss (up to a constant factor) otherwise.
    With ``masks="ratio"`` the mix magnitude is masked by the masks separation uses without the
    Wiener filter (:meth:`UNet.patch_masks`: Spleeter's ratio of the targets' estimates), so every
    target's network learns from the others' errors too.
    """
    if masks not in ("network", "ratio"):
        raise ValueError(f"masks must be 'network' or 'ratio', got {masks!r}")
    if targets.shape[1] != len(model.targets):
        raise ValueError(f"Expected {len(model.targets)} targets {model.targets}, got {targets.shape[1]}")
    frames = model.patch_frames
    mix_mag = model.magnitude(mix)[..., :frames]
    target_mags = model.magnitude(targets.flatten(0, 1)).unflatten(0, targets.shape[:2])[..., :frames]
    if model.audio_channels == 1:
        mix_mag, target_mags = mix_mag.unsqueeze(1), target_mags.unsqueeze(2)
    if masks == "ratio":  # (batch, n_targets, [channels,] bins, frames) as the model gives them
        out = model.patch_masks(mix_mag)
        out = out if model.audio_channels > 1 else out.unsqueeze(2)
    else:
        out = model.network_masks(mix_mag)  # (batch, n_targets, channels, bins, frames)
    if model.patch_norm:
        return masked_magnitude_l1(out.flatten(2, 3), mix_mag.flatten(1, 2), target_mags.flatten(2, 3))
    return (out * mix_mag.unsqueeze(1) - target_mags).abs().mean()


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
