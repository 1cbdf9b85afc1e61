"""The 2-D U-Net of Jansson et al. (2017) on magnitude spectrogram patches, with the layer
order of Spleeter's U-Net (Deezer) as options."""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(size: int, kernel_size: int, stride: int, dilation: int = 1) -> Tuple[int, int]:
    """TensorFlow's ``padding="same"``: ``(before, after)`` for one axis (the extra one goes after)."""
    span = dilation * (kernel_size - 1) + 1
    total = max((-(-size // stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


class EncoderBlock(nn.Module):
    """Strided 2-D convolution, batch norm and leaky ReLU: halves frequency and time.

    ``forward`` returns ``(activation, conv output)``, so a skip can be taken before the norm.
    ``plain`` drops the norm and the activation (a bottleneck fed raw to the decoder).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, leaky_slope: float,
                 tf_padding: bool = False, norm_eps: float = 1e-5, plain: bool = False):
        super().__init__()
        self.tf_padding, self.kernel_size, self.stride = tf_padding, kernel_size, stride
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding=0 if tf_padding else kernel_size // 2)
        self.norm = nn.Identity() if plain else nn.BatchNorm2d(out_ch, eps=norm_eps)
        self.act = nn.Identity() if plain else nn.LeakyReLU(leaky_slope)

    def forward(self, x: torch.Tensor):
        if self.tf_padding:
            top, bottom = same_padding(x.shape[-2], self.kernel_size, self.stride)
            left, right = same_padding(x.shape[-1], self.kernel_size, self.stride)
            x = F.pad(x, (left, right, top, bottom))
        y = self.conv(x)
        return self.act(self.norm(y)), y


class DecoderBlock(nn.Module):
    """Strided transposed convolution, batch norm, ReLU and optional dropout: doubles both axes.

    ``act_before_norm`` applies the ReLU before the norm (Spleeter's order); ``tf_padding``
    crops the output as TensorFlow's ``padding="same"`` does.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, dropout: float,
                 act_before_norm: bool = False, tf_padding: bool = False, norm_eps: float = 1e-5):
        super().__init__()
        self.tf_padding, self.kernel_size, self.stride = tf_padding, kernel_size, stride
        self.conv = nn.ConvTranspose2d(
            in_ch, out_ch, kernel_size, stride,
            padding=0 if tf_padding else kernel_size // 2,
            output_padding=0 if tf_padding else stride - 1,
        )
        self.norm = nn.BatchNorm2d(out_ch, eps=norm_eps)
        self.act = nn.ReLU()
        self.act_before_norm = act_before_norm
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = [n * self.stride for n in x.shape[-2:]]
        y = self.conv(x)
        if self.tf_padding:  # the transposed conv's full output, cropped where TF's "same" crops it
            top = same_padding(size[0], self.kernel_size, self.stride)[0]
            left = same_padding(size[1], self.kernel_size, self.stride)[0]
            y = y[..., top : top + size[0], left : left + size[1]]
        y = self.norm(self.act(y)) if self.act_before_norm else self.act(self.norm(y))
        return self.dropout(y)


class UNetMaskNet(nn.Module):
    """U-Net mask estimator on magnitude patches.

    Args:
        n_targets (int): number of masks (output channels). Default 1.
        in_channels (int): input channels of the patch. Default 1.
        n_layers (int): encoder blocks, and as many decoder blocks. Default 6.
        first_channels (int): filters of the first block; doubles per block. Default 16.
        kernel_size (int): square kernel of every (transposed) convolution. Default 5.
        stride (int): stride of every (transposed) convolution. Default 2.
        leaky_slope (float): negative slope of the encoder's leaky ReLU. Default 0.2.
        dropout (float): dropout of the first ``n_dropout_layers`` decoder blocks. Default 0.5.
        n_dropout_layers (int): how many decoder blocks use dropout. Default 3.
        spleeter_layers (bool): Spleeter's layer order instead of the paper's: skips taken from
            the conv outputs before batch norm, decoder blocks as transposed conv, ReLU, batch
            norm, the bottleneck conv fed raw to the decoder, a last decoder block down to one
            channel, then a 4x4 conv with dilation 2 and a sigmoid. Default False.
        tf_padding (bool): TensorFlow's ``"same"`` padding (asymmetric for even sizes). Default False.
        norm_eps (float): batch norm epsilon (Keras uses 1e-3). Default 1e-5.

    Input ``(batch, in_channels, n_bins, n_frames)`` with both sizes divisible by
    ``stride ** n_layers``; output masks ``(batch, n_targets, n_bins, n_frames)`` in [0, 1].
    """

    def __init__(
        self,
        n_targets: int = 1,
        in_channels: int = 1,
        n_layers: int = 6,
        first_channels: int = 16,
        kernel_size: int = 5,
        stride: int = 2,
        leaky_slope: float = 0.2,
        dropout: float = 0.5,
        n_dropout_layers: int = 3,
        spleeter_layers: bool = False,
        tf_padding: bool = False,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        widths = [first_channels * 2**i for i in range(n_layers)]
        self.encoder = nn.ModuleList(
            EncoderBlock(c_in, c_out, kernel_size, stride, leaky_slope, tf_padding, norm_eps,
                         plain=spleeter_layers and i == n_layers - 1)
            for i, (c_in, c_out) in enumerate(zip([in_channels] + widths[:-1], widths))
        )
        # Decoder block i maps the (concatenated) features back to the width of encoder block
        # n_layers - 2 - i; the first block sees only the bottleneck, the others a skip as well.
        dec_in = [widths[-1]] + [2 * w for w in widths[-2:0:-1]]
        dec_out = widths[-2::-1]
        if spleeter_layers:  # one more decoder block, down to one channel, before the last conv
            dec_in, dec_out = dec_in + [2 * widths[0] if n_layers > 1 else widths[0]], dec_out + [1]
        self.decoder = nn.ModuleList(
            DecoderBlock(c_in, c_out, kernel_size, stride, dropout if i < n_dropout_layers else 0.0,
                         act_before_norm=spleeter_layers, tf_padding=tf_padding, norm_eps=norm_eps)
            for i, (c_in, c_out) in enumerate(zip(dec_in, dec_out))
        )
        if spleeter_layers:
            self.last = nn.Conv2d(1, n_targets, 4, dilation=2, padding=3)  # "same" for 4x4 dilated by 2
        else:
            self.last = nn.ConvTranspose2d(
                2 * widths[0] if n_layers > 1 else widths[0], n_targets, kernel_size, stride,
                padding=kernel_size // 2, output_padding=stride - 1,
            )
        self.spleeter_layers = spleeter_layers
        self.multiple = stride**n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: List[torch.Tensor] = []
        for block in self.encoder:
            x, conv_out = block(x)
            skips.append(conv_out if self.spleeter_layers else x)
        x = skips.pop()  # the bottleneck is the decoder's input, not a skip
        for i, block in enumerate(self.decoder):
            x = block(x)
            if skips:  # Spleeter concatenates (skip, decoder); the paper (decoder, skip)
                x = torch.cat([skips.pop(), x] if self.spleeter_layers else [x, skips.pop()], dim=1)
        return torch.sigmoid(self.last(x))


class UNetPerTarget(nn.Module):
    """One :class:`UNetMaskNet` per target, each giving one mask per input channel (Spleeter's layout).

    Input ``(batch, channels, n_bins, n_frames)``; output ``(batch, n_targets * channels, n_bins,
    n_frames)``, target-major.
    """

    def __init__(self, n_targets: int, channels: int, **unet_args):
        super().__init__()
        self.unets = nn.ModuleList(
            UNetMaskNet(n_targets=channels, in_channels=channels, **unet_args) for _ in range(n_targets)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([unet(x) for unet in self.unets], dim=1)


class PolyphaseConvTranspose2d(nn.Module):
    """A strided :class:`~torch.nn.ConvTranspose2d` (no dilation or groups) computed as one plain
    convolution whose ``stride ** 2`` output groups are the output's phases, interleaved by
    ``pixel_shuffle``: the same sums, in kernels that bfloat16 units run fast.

    Output phase ``(a, b)`` at ``(m, n)`` is ``sum_{j, l} x[m - j, n - l] w[a + s j, b + s l]``:
    a correlation with the taps of that phase, flipped, over ``x`` padded by ``taps - 1``.
    """

    def __init__(self, conv: nn.ConvTranspose2d):
        super().__init__()
        (k_h, k_w), (s_h, s_w) = conv.kernel_size, conv.stride
        if conv.dilation != (1, 1) or conv.groups != 1 or s_h != s_w or conv.padding_mode != "zeros":
            raise ValueError("only plain strided transposed convolutions with one stride")
        s, taps = s_h, (-(-k_h // s_h), -(-k_w // s_w))
        c_in, c_out = conv.weight.shape[:2]
        # Tap k = s * j + a of the kernel, zero-padded to whole phases, goes to phase a at flipped position j.
        padded = F.pad(conv.weight.detach(), (0, s * taps[1] - k_w, 0, s * taps[0] - k_h))
        weight = padded.reshape(c_in, c_out, taps[0], s, taps[1], s).flip(2, 4).permute(1, 3, 5, 0, 2, 4)
        self.weight = nn.Parameter(weight.reshape(c_out * s * s, c_in, *taps).contiguous(), requires_grad=False)
        bias = conv.bias if conv.bias is not None else conv.weight.new_zeros(c_out)
        self.bias = nn.Parameter(bias.repeat_interleave(s * s), requires_grad=False)
        self.stride, self.taps, self.kernel_size = s, taps, (k_h, k_w)
        self.crop = conv.padding  # the transposed convolution's output starts this far into the full one
        self.extra = conv.output_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, (t_h, t_w) = self.stride, self.taps
        y = F.pixel_shuffle(F.conv2d(x, self.weight, self.bias, padding=(t_h - 1, t_w - 1)), s)
        (top, left), (height, width) = self.crop, [(n - 1) * s - 2 * p + k + e for n, p, k, e in
                                                   zip(x.shape[-2:], self.crop, self.kernel_size, self.extra)]
        return y[..., top : top + height, left : left + width]


def as_plain_convolutions(module: nn.Module) -> nn.Module:
    """``module`` with each of its strided transposed convolutions replaced by a
    :class:`PolyphaseConvTranspose2d` (for inference only)."""
    for name, child in module.named_children():
        if isinstance(child, nn.ConvTranspose2d) and child.stride != (1, 1):
            setattr(module, name, PolyphaseConvTranspose2d(child))
        else:
            as_plain_convolutions(child)
    return module
