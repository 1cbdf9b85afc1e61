"""UNet: the Jansson et al. (2017) singing-voice U-Net as an Asteroid model."""
import copy
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from asteroid.models.base_models import BaseEncoderMaskerDecoder
from asteroid_filterbanks import Decoder, Encoder, TorchSTFTFB
from asteroid_filterbanks.transforms import mag

from .masknet import UNetMaskNet

DEFAULT_TARGETS = ("vocals", "accompaniment")


class UNet(BaseEncoderMaskerDecoder):
    """Deep U-Net singing voice separation (Jansson et al., ISMIR 2017).

    The mix magnitude spectrogram (top bin dropped) is cut into patches of
    ``patch_frames`` frames, normalised to [0, 1] per patch, and mapped by a 2-D
    U-Net to one sigmoid mask per target. Overlapping patches are cross-faded.
    The masks multiply the mix STFT (mix phase) and an iSTFT gives the waveforms.

    Args:
        targets (Sequence[str]): one mask per target; ``("vocals",)`` is the paper's
            one-model-per-source setting. Default ``("vocals", "accompaniment")``.
        sample_rate (float): operating rate in Hz. Default 8192.
        n_fft (int): STFT window length. Default 1024.
        hop_length (int): STFT hop. Default 768.
        window (str): name of a ``torch.<name>_window``. Default ``"hann"``.
        n_bins (int): frequency bins seen by the network (from 0 Hz). Default 512.
        patch_frames (int): frames per patch. Default 128.
        patch_hop (int): hop between patches at inference; ``patch_frames`` means no
            overlap. Default 64.
        n_layers, first_channels, kernel_size, stride, leaky_slope, dropout,
        n_dropout_layers: the U-Net, see :class:`~asteroid_unet.masknet.UNetMaskNet`.
            Defaults 6, 16, 5, 2, 0.2, 0.5, 3.
        patch_batch (int): patches per network call at inference (bounds memory). Default 32.

    Shapes: ``forward`` takes ``(time,)``, ``(batch, time)`` or ``(batch, channels, time)``
    at ``sample_rate``; channels are separated independently. It returns
    ``(n_targets, time)``, ``(batch, n_targets, time)`` (also for one channel) or
    ``(batch, n_targets, channels, time)``, always of the input's length.

    References
        - [1] A. Jansson, E. Humphrey, N. Montecchio, R. Bittner, A. Kumar, T. Weyde,
          "Singing Voice Separation with Deep U-Net Convolutional Networks", ISMIR 2017.
    """

    def __init__(
        self,
        targets: Sequence[str] = DEFAULT_TARGETS,
        sample_rate: float = 8192,
        n_fft: int = 1024,
        hop_length: int = 768,
        window: str = "hann",
        n_bins: int = 512,
        patch_frames: int = 128,
        patch_hop: int = 64,
        n_layers: int = 6,
        first_channels: int = 16,
        kernel_size: int = 5,
        stride: int = 2,
        leaky_slope: float = 0.2,
        dropout: float = 0.5,
        n_dropout_layers: int = 3,
        patch_batch: int = 32,
    ):
        targets = [str(t) for t in targets]
        if not targets:
            raise ValueError("UNet needs at least one target")
        multiple = int(stride) ** int(n_layers)
        if n_bins % multiple or patch_frames % multiple:
            raise ValueError(
                f"n_bins ({n_bins}) and patch_frames ({patch_frames}) must be multiples of "
                f"stride ** n_layers = {multiple}"
            )
        if not 0 < n_bins <= n_fft // 2 + 1:
            raise ValueError(f"n_bins must be in [1, n_fft // 2 + 1], got {n_bins}")
        if not 0 < patch_hop <= patch_frames:
            raise ValueError(f"patch_hop must be in [1, patch_frames], got {patch_hop}")
        fb = TorchSTFTFB.from_torch_args(
            n_fft=int(n_fft),
            hop_length=int(hop_length),
            win_length=int(n_fft),
            window=getattr(torch, f"{window}_window")(int(n_fft)).numpy(),
            center=True,
            sample_rate=float(sample_rate),
        )
        masknet_args = dict(
            n_layers=int(n_layers),
            first_channels=int(first_channels),
            kernel_size=int(kernel_size),
            stride=int(stride),
            leaky_slope=float(leaky_slope),
            dropout=float(dropout),
            n_dropout_layers=int(n_dropout_layers),
        )
        masker = UNetMaskNet(n_targets=len(targets), **masknet_args)
        super().__init__(Encoder(fb), masker, Decoder(fb))
        self.in_channels = None  # any channel count: channels are separated independently
        self.targets = targets
        self.n_fft, self.hop_length, self.window = int(n_fft), int(hop_length), str(window)
        self.n_bins, self.patch_frames, self.patch_hop = int(n_bins), int(patch_frames), int(patch_hop)
        self.patch_batch = int(patch_batch)
        self.masknet_args = masknet_args
        self.register_buffer("crossfade", _crossfade_window(self.patch_frames, self.patch_hop))

    # ----- waveform path (Asteroid's encoder -> masker -> decoder) -----

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Separate waveforms; see the class docstring for the shapes."""
        wav = torch.as_tensor(wav)
        if wav.ndim not in (1, 2, 3):
            raise ValueError(f"Expected (time,), (batch, time) or (batch, channels, time), got {tuple(wav.shape)}")
        shape = wav.shape
        x = wav.reshape(math.prod(shape[:-1]), 1, shape[-1]).to(self.crossfade.dtype)
        n_targets, length = len(self.targets), shape[-1]
        if length == 0 or x.shape[0] == 0:
            out = x.new_zeros(x.shape[0], n_targets, length)
        else:
            # Whole hops, so the last frames cover the tail; and at least n_fft for the reflect padding.
            padded_length = max(self.n_fft, math.ceil(length / self.hop_length) * self.hop_length)
            padded = F.pad(x, (0, padded_length - length))
            out = super().forward(padded)[..., :length]
        if wav.ndim == 1:
            return out[0]
        if wav.ndim == 2 or shape[1] == 1:
            return out.reshape(shape[0], n_targets, length)
        return out.reshape(shape[0], shape[1], n_targets, length).transpose(1, 2)

    def forward_masker(self, tf_rep: torch.Tensor) -> torch.Tensor:
        """Masks ``(batch, n_targets, n_fft // 2 + 1, frames)`` from an Asteroid STFT ``(batch, 2 * freqs, frames)``."""
        masks = self.masks_from_magnitude(mag(tf_rep)[:, : self.n_bins])
        n_missing = self.n_fft // 2 + 1 - self.n_bins
        # Bins above the network's band take the mask of its top bin.
        return torch.cat([masks, masks[:, :, -1:].expand(-1, -1, n_missing, -1)], dim=2)

    def apply_masks(self, tf_rep: torch.Tensor, est_masks: torch.Tensor) -> torch.Tensor:
        """Mask real and imaginary parts alike: mask x mix magnitude with the mix phase."""
        return tf_rep.unsqueeze(1) * est_masks.repeat(1, 1, 2, 1)

    # ----- magnitude path (training, chunked inference) -----

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """Mix magnitude ``(batch, n_bins, frames)`` of mono waveforms ``(batch, time)``."""
        return mag(self.encoder(wav.unsqueeze(1)))[:, : self.n_bins]

    @property
    def patch_samples(self) -> int:
        """Waveform length whose centred STFT has exactly ``patch_frames`` frames."""
        return (self.patch_frames - 1) * self.hop_length

    def patch_masks(self, patches: torch.Tensor) -> torch.Tensor:
        """Masks ``(n, n_targets, n_bins, patch_frames)`` of raw magnitude patches ``(n, 1, n_bins, patch_frames)``.

        Each patch is divided by its maximum, so the network sees values in [0, 1].
        """
        return self.masker(normalize_patches(patches))

    def masks_from_magnitude(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Masks ``(batch, n_targets, n_bins, frames)`` for a magnitude ``(batch, n_bins, frames)`` of any length.

        Patches start every ``patch_hop`` frames, from ``patch_frames - patch_hop``
        frames before the first frame, and are cross-faded; so a frame's mask depends
        only on the patches that cover it, on a grid fixed by the first frame.
        """
        batch, n_bins, n_frames = magnitude.shape
        size, hop = self.patch_frames, self.patch_hop
        lead = size - hop
        n_patches = max(1, math.ceil((n_frames + 2 * lead - size) / hop) + 1)
        total = (n_patches - 1) * hop + size
        padded = F.pad(magnitude, (lead, total - lead - n_frames))
        patches = padded.unfold(-1, size, hop).transpose(1, 2).reshape(-1, 1, n_bins, size)
        masks = torch.cat([self.patch_masks(p) for p in patches.split(self.patch_batch)])
        n_targets = masks.shape[1]
        weighted = (masks * self.crossfade).reshape(batch, n_patches, n_targets * n_bins * size)
        summed = F.fold(weighted.transpose(1, 2), (1, total), (1, size), stride=(1, hop))
        weights = F.fold(
            self.crossfade.expand(1, n_patches, size).transpose(1, 2), (1, total), (1, size), stride=(1, hop)
        )
        masks = (summed / weights).reshape(batch, n_targets, n_bins, total)
        return masks[..., lead : lead + n_frames]

    def for_inference(self) -> "UNet":
        """A copy in eval mode with batch norm folded into the convolutions and channels-last weights.

        Same outputs (to float rounding), about twice as fast on a CPU; not for training or saving.
        """
        fast = copy.deepcopy(self).eval()
        for block in fast.masker.encoder:
            block.conv, block.norm = fuse_conv_bn_eval(block.conv, block.norm), nn.Identity()
            block.act.inplace = True  # on the convolution's own output: one tensor fewer per block
        for block in fast.masker.decoder:
            block.conv, block.norm = fuse_conv_bn_eval(block.conv, block.norm, transpose=True), nn.Identity()
            block.act.inplace = True
        return fast.to(memory_format=torch.channels_last)

    # ----- serialisation -----

    def get_model_args(self) -> dict:
        """The constructor arguments, as plain Python types."""
        return dict(
            targets=list(self.targets),
            sample_rate=float(self.sample_rate),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            n_bins=self.n_bins,
            patch_frames=self.patch_frames,
            patch_hop=self.patch_hop,
            patch_batch=self.patch_batch,
            **self.masknet_args,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_conf_or_path=None, *args, **kwargs):
        """Asteroid's ``from_pretrained``, but a file, hub folder, URL or Hub id is read by
        :func:`asteroid_unet.weights.load_package`: explicitly ``torch.load(weights_only=True)``,
        so a package carrying pickled code is refused with a one-line ``CheckpointError``.
        Without an argument: the default weights shipped in the package (no download)."""
        if not isinstance(pretrained_model_conf_or_path, dict):
            from .weights import CheckpointError, default_weights_path, load_package, resolve

            if pretrained_model_conf_or_path is None:
                pretrained_model_conf_or_path = default_weights_path()
                if pretrained_model_conf_or_path is None:
                    raise CheckpointError("this build of asteroid-unet ships no default weights")
            pretrained_model_conf_or_path = load_package(resolve(pretrained_model_conf_or_path))
        return super().from_pretrained(pretrained_model_conf_or_path, *args, **kwargs)

    def serialize(self) -> dict:
        """Asteroid's package dict, with plain types only so ``torch.load(weights_only=True)`` reads it."""
        conf = super().serialize()
        versions = conf["infos"]["software_versions"]
        conf["infos"]["software_versions"] = {k: str(v) for k, v in versions.items()}
        return conf

    def get_state_dict(self) -> dict:
        """The weights without derived buffers."""
        return {k: v for k, v in self.state_dict().items() if k != "crossfade"}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        state_dict = dict(state_dict)
        state_dict.setdefault("crossfade", self.crossfade)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def normalize_patches(patches: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Divide each patch ``(n, c, bins, frames)`` by its maximum (silent patches stay 0)."""
    peak = patches.detach().amax(dim=(-3, -2, -1), keepdim=True)
    return patches / peak.clamp_min(eps)


def _crossfade_window(size: int, hop: int) -> torch.Tensor:
    """Triangular cross-fade weights (never zero), or flat weights without overlap."""
    if hop == size:
        return torch.ones(size)
    position = torch.arange(size, dtype=torch.float32)
    return torch.minimum(position + 1, size - position) / (size / 2)
