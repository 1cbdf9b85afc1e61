"""UNet: the Jansson et al. (2017) singing-voice U-Net as an Asteroid model."""
import contextlib
import copy
import importlib.metadata
import itertools
import math
import warnings
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from asteroid.models.base_models import BaseEncoderMaskerDecoder
from asteroid_filterbanks import Decoder, Encoder
from asteroid_filterbanks.transforms import mag

from .asteroid_api import file_separate, separate_like_asteroid, separate_waveforms
from .errors import CheckpointError, one_line
from .filterbank import STFTFilterbank
from .masknet import UNetMaskNet, UNetPerTarget, as_plain_convolutions
from .provenance import checked as checked_provenance
from .weights import DEFAULT_MODEL, read_package

DEFAULT_TARGETS = ("vocals", "accompaniment")
MASK_EPS = 1e-10  # Spleeter's epsilon in its ratio masks
# Separator settings a model may carry as its own defaults (``UNet(separation=...)``).
SEPARATION_SETTINGS = {"wiener_iterations": int, "tta": bool, "full_band": bool, "precision": str}
PINNED_PRECISIONS = ("auto", "float32")  # a model may keep float32 where reduced precision costs it quality
# Spleeter 2stems' own, chosen on musdb's 14 validation previews of MUSDB18-7 (model_card.md).
SPLEETER_SEPARATION = {"wiener_iterations": 1, "tta": False, "full_band": True}


def separation_settings(settings: Optional[dict]) -> dict:
    """``settings`` (a model's separator defaults, or None) checked and cast to :data:`SEPARATION_SETTINGS`' types."""
    unknown = set(settings or {}) - set(SEPARATION_SETTINGS)
    if unknown:
        raise ValueError(f"separation settings must be among {sorted(SEPARATION_SETTINGS)}, got {sorted(unknown)}")
    checked = {key: SEPARATION_SETTINGS[key](value) for key, value in (settings or {}).items()}
    if checked.get("precision", "auto") not in PINNED_PRECISIONS:
        raise ValueError(f"a model's own precision must be one of {', '.join(PINNED_PRECISIONS)}, "
                         f"got {checked['precision']!r}")
    return checked


def spleeter_args(targets: Sequence[str] = DEFAULT_TARGETS) -> dict:
    """The :class:`UNet` arguments of Deezer's Spleeter models (44.1 kHz stereo, one U-Net per target)."""
    return dict(
        targets=list(targets), sample_rate=44100.0, n_fft=4096, hop_length=1024, n_bins=1024,
        patch_frames=512, patch_hop=512, audio_channels=2, framing="causal", patch_norm=False,
        spleeter_layers=True, tf_padding=True, norm_eps=1e-3, unet_per_target=True,
        mask_exponent=2.0, mask_extension="zeros", patch_batch=2, separation=dict(SPLEETER_SEPARATION),
    )


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
        audio_channels (int): channels the network sees together, with one mask per channel;
            1 separates every channel on its own. Default 1.
        framing (str): ``"center"``: frame k is centred on sample ``k * hop_length``;
            ``"causal"``: frame k covers the ``n_fft`` samples before it (Spleeter's STFT:
            ``n_fft`` zeros prepended, no centring, zeros at the end). Default ``"center"``.
        patch_norm (bool): divide each patch by its maximum. Default True.
        spleeter_layers, tf_padding, norm_eps: Spleeter's layer order, TensorFlow's padding and
            batch norm epsilon, see :class:`~asteroid_unet.masknet.UNetMaskNet`. Defaults False, False, 1e-5.
        unet_per_target (bool): one U-Net per target instead of one U-Net with a mask per target.
            Default False.
        mask_exponent (float): 0: the sigmoid outputs are the masks; p > 0: Spleeter's ratio masks
            ``(y_i^p + eps / n) / (sum_j y_j^p + eps)`` of the estimates ``y_i = sigmoid_i * |mix|``.
            Default 0.
        mask_extension (str): the mask above ``n_bins`` in ``forward``: ``"top"`` repeats the top
            bin's, ``"zeros"`` silences the band (as Spleeter does). Default ``"top"``.
        separation (dict): the model's own defaults for the separator, chosen on validation data:
            any of ``wiener_iterations`` (int), ``tta`` and ``full_band`` (bool), and ``precision``
            (``"float32"`` keeps the U-Net in float32 where ``auto`` would reduce it); what it leaves out
            takes the package's defaults (:func:`asteroid_unet.separator.model_settings`). Saved with
            the model. Default: none.
        provenance (dict): where the weights came from (base weights, training runs with their data
            sets and licences, measured scores), JSON-plain; see :mod:`asteroid_unet.provenance`.
            Saved with the model, extended by the recipes; ``asteroid-unet info`` prints it.
            Default: None (not recorded).

    :func:`spleeter_args` gives the arguments of Spleeter's pretrained models.

    Shapes: ``forward`` takes ``(time,)``, ``(batch, time)`` or ``(batch, channels, time)``
    at ``sample_rate``; with ``audio_channels=1`` channels are separated independently. It returns
    ``(n_targets, time)``, ``(batch, n_targets, time)`` (also for one channel) or
    ``(batch, n_targets, channels, time)``, always of the input's length. A model with
    ``audio_channels > 1`` takes ``(batch, audio_channels, time)`` only.

    Inference is deterministic whoever loads the model: ``forward`` always runs the
    network as in eval mode (batch norm's running statistics, no dropout), whatever
    the module's mode, and leaves that mode as it was. Training goes through the
    magnitude path (:func:`~asteroid_unet.loss.unet_loss` and :meth:`patch_masks`),
    which follows the mode as usual.

    Two waveform paths: ``forward`` is the paper's network output (each target's own
    mask, at ``sample_rate``, band-limited to it). Asteroid's entry points
    (``separate``, ``forward_wav``, ``file_separate``, ``asteroid-infer``) give the
    stems of :func:`asteroid_unet.separate`, the same as the ``asteroid-unet`` command:
    full band at the input's own rate and channel count, vocals + accompaniment = input.

    References
        - [1] A. Jansson, E. Humphrey, N. Montecchio, R. Bittner, A. Kumar, T. Weyde,
          "Singing Voice Separation with Deep U-Net Convolutional Networks", ISMIR 2017.
        - [2] R. Hennequin, A. Khlif, F. Voituret, M. Moussallam, "Spleeter: a fast and
          efficient music source separation tool with pre-trained models", JOSS 2020.
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
        audio_channels: int = 1,
        framing: str = "center",
        patch_norm: bool = True,
        spleeter_layers: bool = False,
        tf_padding: bool = False,
        norm_eps: float = 1e-5,
        unet_per_target: bool = False,
        mask_exponent: float = 0.0,
        mask_extension: str = "top",
        separation: Optional[dict] = None,
        provenance: Optional[dict] = None,
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
        if framing not in ("center", "causal"):
            raise ValueError(f"framing must be 'center' or 'causal', got {framing!r}")
        if mask_extension not in ("top", "zeros"):
            raise ValueError(f"mask_extension must be 'top' or 'zeros', got {mask_extension!r}")
        if int(audio_channels) < 1:
            raise ValueError(f"audio_channels must be at least 1, got {audio_channels}")
        fb = STFTFilterbank.from_torch_args(
            n_fft=int(n_fft),
            hop_length=int(hop_length),
            win_length=int(n_fft),
            window=getattr(torch, f"{window}_window")(int(n_fft)).numpy(),
            center=True,
            pad_mode="reflect" if framing == "center" else "constant",
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
            spleeter_layers=bool(spleeter_layers),
            tf_padding=bool(tf_padding),
            norm_eps=float(norm_eps),
        )
        channels = int(audio_channels)
        if unet_per_target:
            masker = UNetPerTarget(len(targets), channels, **masknet_args)
        else:
            masker = UNetMaskNet(n_targets=len(targets) * channels, in_channels=channels, **masknet_args)
        super().__init__(Encoder(fb), masker, Decoder(fb))
        # Asteroid's check of the input's channel count: None, as forward_wav takes any (a stereo model
        # separates a mono song as if both channels were the same; forward itself needs audio_channels)
        self.in_channels = None
        self.audio_channels = channels
        self.framing, self.patch_norm, self.unet_per_target = str(framing), bool(patch_norm), bool(unet_per_target)
        self.mask_exponent, self.mask_extension = float(mask_exponent), str(mask_extension)
        self.targets = targets
        self.n_fft, self.hop_length, self.window = int(n_fft), int(hop_length), str(window)
        self.n_bins, self.patch_frames, self.patch_hop = int(n_bins), int(patch_frames), int(patch_hop)
        self.patch_batch = int(patch_batch)
        self.masknet_args = masknet_args
        self.separation = separation_settings(separation)
        self.provenance = checked_provenance(provenance)
        self.register_buffer("crossfade", _crossfade_window(self.patch_frames, self.patch_hop))

    # ----- waveform path (Asteroid's encoder -> masker -> decoder) -----

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Separate waveforms with the network in eval mode; see the class docstring for the shapes."""
        with eval_mode(self):
            return self._forward(torch.as_tensor(wav))

    def _forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.ndim not in (1, 2, 3):
            raise ValueError(f"Expected (time,), (batch, time) or (batch, channels, time), got {tuple(wav.shape)}")
        shape = wav.shape
        n_targets, length = len(self.targets), shape[-1]
        if self.audio_channels > 1:
            if wav.ndim != 3 or shape[1] != self.audio_channels:
                raise ValueError(f"this model separates {self.audio_channels}-channel audio: expected "
                                 f"(batch, {self.audio_channels}, time), got {tuple(shape)}")
            x = wav.to(self.crossfade.dtype)
            if length == 0 or shape[0] == 0:
                return x.new_zeros(shape[0], n_targets, shape[1], length)
            padded, start = self._pad_for_stft(x)
            return super().forward(padded)[..., start : start + length]
        x = wav.reshape(math.prod(shape[:-1]), 1, shape[-1]).to(self.crossfade.dtype)
        if length == 0 or x.shape[0] == 0:
            out = x.new_zeros(x.shape[0], n_targets, length)
        else:
            padded, start = self._pad_for_stft(x)
            out = super().forward(padded)[..., start : start + length]
        if wav.ndim == 1:
            return out[0]
        if wav.ndim == 2 or shape[1] == 1:
            return out.reshape(shape[0], n_targets, length)
        return out.reshape(shape[0], shape[1], n_targets, length).transpose(1, 2)

    def _pad_for_stft(self, x: torch.Tensor):
        """``(padded, start)``: ``x`` padded for the encoder's centred STFT, and where ``x`` starts in it.

        ``"center"``: whole hops, so the last frames cover the tail, and at least ``n_fft`` for the
        reflect padding. ``"causal"``: ``n_fft // 2`` zeros before (the centring adds as many), and
        zeros after up to Spleeter's frame count ``ceil((time + n_fft) / hop_length)``.
        """
        length = x.shape[-1]
        if self.framing == "center":
            padded_length = max(self.n_fft, math.ceil(length / self.hop_length) * self.hop_length)
            return F.pad(x, (0, padded_length - length)), 0
        start = self.n_fft // 2
        n_frames = math.ceil((length + self.n_fft) / self.hop_length)
        return F.pad(x, (start, (n_frames - 1) * self.hop_length - start - length)), start

    def forward_masker(self, tf_rep: torch.Tensor) -> torch.Tensor:
        """Masks ``(batch, n_targets, [channels,] n_fft // 2 + 1, frames)`` from an Asteroid STFT
        ``(batch, [channels,] 2 * freqs, frames)``."""
        masks = self.masks_from_magnitude(mag(tf_rep)[..., : self.n_bins, :])
        n_missing = self.n_fft // 2 + 1 - self.n_bins
        if self.mask_extension == "zeros":
            above = masks.new_zeros(*masks.shape[:-2], n_missing, masks.shape[-1])
        else:  # bins above the network's band take the mask of its top bin
            above = masks[..., -1:, :].expand(*masks.shape[:-2], n_missing, masks.shape[-1])
        return torch.cat([masks, above], dim=-2)

    def forward_decoder(self, masked_tf_rep: torch.Tensor) -> torch.Tensor:
        """Asteroid's iSTFT; with causal framing, the last samples (cropped away) have a near-zero
        window envelope, which asteroid_filterbanks reports as a RuntimeWarning: silenced here."""
        with warnings.catch_warnings():
            if self.framing == "causal":
                warnings.filterwarnings("ignore", message="Minimum NOLA", category=RuntimeWarning)
            return super().forward_decoder(masked_tf_rep)

    def apply_masks(self, tf_rep: torch.Tensor, est_masks: torch.Tensor) -> torch.Tensor:
        """Mask real and imaginary parts alike: mask x mix magnitude with the mix phase."""
        return tf_rep.unsqueeze(1) * torch.cat([est_masks, est_masks], dim=-2)

    # ----- Asteroid's separation API, through the package's separator -----

    def forward_wav(self, wav, *args, **settings) -> torch.Tensor:
        """Stems of :func:`asteroid_unet.separate` for waveforms at ``sample_rate``, any channel count;
        what Asteroid's ``separate`` functions call (their keyword arguments reach the separator:
        ``wiener_iterations``, ``tta``, ...). Mono inputs give ``forward``'s shapes; ``(batch,
        channels, time)`` gives ``(batch, n_stems, time, channels)``, each stem as ``soundfile``
        writes it (see :func:`~asteroid_unet.asteroid_api.separate_waveforms`). Never changes the model."""
        return separate_waveforms(self, wav, **settings)

    def separate(self, wav, output_dir=None, force_overwrite=False, resample=False, **kwargs):
        """Asteroid's ``separate``: a tensor or array at ``sample_rate`` gives :meth:`forward_wav`'s
        stems (without Asteroid's energy rescaling), a file name :meth:`file_separate`'s files."""
        return separate_like_asteroid(self, wav, output_dir, force_overwrite)

    def file_separate(self, filename, output_dir=None, force_overwrite=False, resample=False, **kwargs) -> None:
        """Asteroid's ``file_separate``: writes ``<name>_est1.wav`` (vocals), ``<name>_est2.wav``, ...
        next to the file or in ``output_dir``, full band, at the file's own rate and channel count.

        Any rate is accepted, so ``resample`` has no effect. Existing files are kept (with a
        warning, as Asteroid does) unless ``force_overwrite``.
        """
        file_separate(self, filename, output_dir, force_overwrite)

    # ----- magnitude path (training, chunked inference) -----

    @property
    def first_frame_center(self) -> int:
        """Where the centre of frame 0 of :meth:`magnitude` lies, in samples from the signal's start."""
        return 0 if self.framing == "center" else -(self.n_fft // 2)

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """Mix magnitude ``(batch, [channels,] n_bins, frames)`` of waveforms ``(batch, [channels,] time)``
        (``torch.stft``, the same transform as the encoder's)."""
        window = getattr(torch, f"{self.window}_window")(self.n_fft, device=wav.device, dtype=wav.dtype)
        if self.framing == "center":
            spec = torch.stft(wav.reshape(-1, wav.shape[-1]), self.n_fft, self.hop_length, window=window,
                              center=True, pad_mode="reflect", return_complex=True)
        else:
            n_frames = math.ceil((wav.shape[-1] + self.n_fft) / self.hop_length)
            padded = F.pad(wav.reshape(-1, wav.shape[-1]),
                           (self.n_fft, (n_frames - 1) * self.hop_length - wav.shape[-1]))
            spec = torch.stft(padded, self.n_fft, self.hop_length, window=window, center=False, return_complex=True)
        return spec[:, : self.n_bins].abs().reshape(*wav.shape[:-1], self.n_bins, -1)

    @property
    def patch_samples(self) -> int:
        """Waveform length whose centred STFT has exactly ``patch_frames`` frames."""
        return (self.patch_frames - 1) * self.hop_length

    def patch_masks(self, patches: torch.Tensor) -> torch.Tensor:
        """Masks ``(n, n_targets, [channels,] n_bins, patch_frames)`` of raw magnitude patches
        ``(n, channels, n_bins, patch_frames)``; the channel axis of the masks only for
        ``audio_channels > 1``.

        With ``patch_norm`` each patch is divided by its maximum, so the network sees values in [0, 1].
        """
        masks = self.network_masks(patches)
        if self.mask_exponent > 0:  # ratio of the estimated spectrograms, as Spleeter
            power = (masks * patches.unsqueeze(1)) ** self.mask_exponent
            masks = (power + MASK_EPS / len(self.targets)) / (power.sum(1, keepdim=True) + MASK_EPS)
        return masks if self.audio_channels > 1 else masks[:, :, 0]

    def network_masks(self, patches: torch.Tensor) -> torch.Tensor:
        """The network's sigmoid outputs ``(n, n_targets, channels, n_bins, patch_frames)`` for raw
        magnitude patches ``(n, channels, n_bins, patch_frames)``: what training fits, before any ratio."""
        net_input = normalize_patches(patches) if self.patch_norm else patches
        dtype = next(self.masker.parameters()).dtype  # reduced in an inference copy (for_inference)
        out = self.masker(net_input.to(dtype)).to(patches.dtype)
        return out.reshape(out.shape[0], len(self.targets), self.audio_channels, *out.shape[-2:])

    def masks_from_magnitude(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Masks ``(batch, n_targets, [channels,] n_bins, frames)`` for a magnitude ``(batch, [channels,]
        n_bins, frames)`` of any length (the channel axis for ``audio_channels > 1``).

        Patches start every ``patch_hop`` frames, from ``patch_frames - patch_hop``
        frames before the first frame, and are cross-faded; so a frame's mask depends
        only on the patches that cover it, on a grid fixed by the first frame.
        """
        patches = self.magnitude_patches(magnitude)
        masks = torch.cat([self.patch_masks(p) for p in patches.split(self.patch_batch)])
        return self.masks_from_patches(masks, magnitude.shape[-1])

    def magnitude_patches(self, magnitude: torch.Tensor) -> torch.Tensor:
        """The patches ``(batch * n_patches, channels, n_bins, patch_frames)`` of a magnitude ``(batch,
        [channels,] n_bins, frames)`` that :meth:`masks_from_magnitude` sends through :meth:`patch_masks`,
        in order: every ``patch_hop`` frames from ``patch_frames - patch_hop`` frames before the first
        frame, zero-padded at both ends."""
        channels = self.audio_channels
        batch, n_bins, n_frames = magnitude.shape[0], magnitude.shape[-2], magnitude.shape[-1]
        size, hop = self.patch_frames, self.patch_hop
        lead = size - hop
        n_patches = self._n_patches(n_frames)
        total = (n_patches - 1) * hop + size
        padded = F.pad(magnitude.reshape(batch, channels, n_bins, n_frames), (lead, total - lead - n_frames))
        return padded.unfold(-1, size, hop).permute(0, 3, 1, 2, 4).reshape(-1, channels, n_bins, size)

    def masks_from_patches(self, masks: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Masks ``(batch, n_targets, [channels,] n_bins, n_frames)`` from the :meth:`patch_masks` of the
        :meth:`magnitude_patches` of magnitudes of ``n_frames`` frames: patches cross-faded (or laid
        side by side) on their grid."""
        size, hop = self.patch_frames, self.patch_hop
        lead = size - hop
        n_patches = self._n_patches(n_frames)
        total = (n_patches - 1) * hop + size
        batch, n_bins = masks.shape[0] // n_patches, masks.shape[-2]
        n_masks = len(self.targets) * self.audio_channels
        if hop == size:  # patches side by side: nothing to cross-fade
            side = masks.reshape(batch, n_patches, n_masks * n_bins, size).transpose(1, 2)
            return side.reshape(batch, *masks.shape[1:-1], total)[..., lead : lead + n_frames]
        weighted = (masks * self.crossfade).reshape(batch, n_patches, n_masks * n_bins * size)
        summed = F.fold(weighted.transpose(1, 2), (1, total), (1, size), stride=(1, hop))
        weights = F.fold(
            self.crossfade.expand(1, n_patches, size).transpose(1, 2), (1, total), (1, size), stride=(1, hop)
        )
        masks = (summed / weights).reshape(batch, *masks.shape[1:-1], total)
        return masks[..., lead : lead + n_frames]

    def _n_patches(self, n_frames: int) -> int:
        lead = self.patch_frames - self.patch_hop
        return max(1, math.ceil((n_frames + 2 * lead - self.patch_frames) / self.patch_hop) + 1)

    def for_inference(self, dtype: torch.dtype = torch.float32) -> "UNet":
        """A copy in eval mode with batch norm folded into the convolutions and channels-last weights,
        its U-Net cast once to ``dtype`` (the STFTs stay float32); not for training or saving.

        In float32, the same outputs (to float rounding), about twice as fast on a CPU. With Spleeter's
        layers (nothing to fold) it shares the tensors that are already channels last (the entry
        points load them so) instead of copying them. In a reduced ``dtype`` the transposed
        convolutions run as plain ones (:func:`~asteroid_unet.masknet.as_plain_convolutions`),
        which PyTorch's CPU kernels compute several times faster in bfloat16, and batch norm
        layers keep their float32 statistics (they take and give ``dtype``).
        """
        # The STFT filterbanks hold no weights to fold: shared, not copied (67 MB each at n_fft 4096).
        memo = {id(self.encoder): self.encoder, id(self.decoder): self.decoder}
        unets = [m for m in self.masker.modules() if isinstance(m, UNetMaskNet)]
        if all(unet.spleeter_layers for unet in unets):
            # Spleeter's order (skips before the norm, norm after the ReLU) leaves nothing to fold: tensors
            # already in their inference layout are shared, not copied (78 MB for Spleeter 2stems; the
            # inference copy never writes to them: a reduced one casts into new tensors of its own).
            memo.update({id(t): t for t in itertools.chain(self.masker.parameters(), self.masker.buffers())
                         if t.dim() != 4 or t.is_contiguous(memory_format=torch.channels_last)})
        fast = copy.deepcopy(self, memo=memo).eval()
        for unet in [m for m in fast.masker.modules() if isinstance(m, UNetMaskNet) and not m.spleeter_layers]:
            for block in unet.encoder:
                block.conv, block.norm = fuse_conv_bn_eval(block.conv, block.norm), nn.Identity()
            for block in unet.decoder:
                block.conv, block.norm = fuse_conv_bn_eval(block.conv, block.norm, transpose=True), nn.Identity()
        if dtype != torch.float32:  # the convolutions only: batch norm keeps float32 statistics and affine weights
            for layer in fast.masker.modules():
                if isinstance(layer, nn.modules.conv._ConvNd):
                    for name, param in list(layer.named_parameters(recurse=False)):
                        setattr(layer, name, nn.Parameter(param.detach().to(dtype), requires_grad=False))
            fast.masker = as_plain_convolutions(fast.masker)
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
            audio_channels=self.audio_channels,
            framing=self.framing,
            patch_norm=self.patch_norm,
            unet_per_target=self.unet_per_target,
            mask_exponent=self.mask_exponent,
            mask_extension=self.mask_extension,
            separation=dict(self.separation),
            provenance=checked_provenance(self.provenance),
            **self.masknet_args,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_conf_or_path=None, *args, **kwargs) -> "UNet":
        """The one loader: a model name, file, hub folder, URL or Hub repo id (see
        :func:`asteroid_unet.weights.locate`; None: the package's default model), or an Asteroid
        package dict, as a UNet in eval mode. Files are read with ``torch.load(weights_only=True)``
        (:func:`asteroid_unet.weights.load_package`), so a package carrying pickled code is refused;
        every refusal is a one-line ``CheckpointError``."""
        if isinstance(pretrained_model_conf_or_path, dict):
            conf, where = pretrained_model_conf_or_path, "package"
        else:
            where = pretrained_model_conf_or_path or DEFAULT_MODEL
            conf = read_package(pretrained_model_conf_or_path)
        try:
            return super().from_pretrained(conf, *args, **kwargs).eval()
        except Exception as err:  # wrong args, shapes or types in a stranger's package: one line, not a traceback
            raise CheckpointError(f"{where}: weights do not fit a UNet ({one_line(err, 120)})") from None

    @classmethod
    def for_training(cls, init=None, **model_args) -> "UNet":
        """A model to train, in train mode: the weights of ``init`` (a model name such as
        ``spleeter-2stems``, a file or a Hub repo id) at its own settings, as float32, when it is
        given (``model_args`` are then not used); else a new UNet of ``model_args``."""
        return cls.from_pretrained(init).float().train() if init else cls(**model_args)

    def serialize(self) -> dict:
        """Asteroid's package dict (the keys of ``BaseModel.serialize``), with plain types only so
        ``torch.load(weights_only=True)`` reads it.

        Asteroid's own ``serialize`` imports pytorch-lightning for its version number, and the
        torchmetrics that Asteroid pins imports ``pkg_resources``, which setuptools 81 and later
        no longer have; the version is read from the installed distribution instead.
        """
        from asteroid import __version__ as asteroid_version

        versions = dict(torch_version=str(torch.__version__),
                        pytorch_lightning_version=_installed_version("pytorch-lightning"),
                        asteroid_version=str(asteroid_version))
        return dict(model_name=type(self).__name__, state_dict=self.get_state_dict(),
                    model_args=self.get_model_args(), infos=dict(software_versions=versions))

    def get_state_dict(self) -> dict:
        """The weights without derived buffers (the cross-fade, the STFT's filters and window)."""
        return {k: v for k, v in self.state_dict().items() if not _derived(k)}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        state_dict = dict(state_dict)
        for key, value in self.state_dict().items():
            if _derived(key):
                state_dict.setdefault(key, value)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def _installed_version(distribution: str) -> str:
    """The installed version of ``distribution``, without importing it; "not installed" if absent."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _derived(key: str) -> bool:
    """Buffers that the constructor arguments determine."""
    return key == "crossfade" or key.startswith(("encoder.filterbank.", "decoder.filterbank."))


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Run ``module`` in eval mode inside the block, then give every submodule its mode back."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def batch_norm_eval(module: nn.Module) -> None:
    """Put every batch norm layer of ``module`` in eval mode, so its running statistics stay as they
    are while the rest trains (fine-tuning on batches of one or two patches)."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.eval()


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


def load_model(spec=None) -> UNet:
    """:meth:`UNet.from_pretrained`: a model name, file, hub folder, URL or Hub repo id (None: the default model)."""
    return UNet.from_pretrained(spec)
