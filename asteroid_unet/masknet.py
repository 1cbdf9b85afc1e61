"""The 2-D U-Net of Jansson et al. (2017) on magnitude spectrogram patches."""
from typing import List

import torch
from torch import nn


class EncoderBlock(nn.Module):
    """Strided 2-D convolution, batch norm and leaky ReLU: halves frequency and time."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, leaky_slope: float):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_ch)
        self.act = nn.LeakyReLU(leaky_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class DecoderBlock(nn.Module):
    """Strided transposed convolution, batch norm, ReLU and optional dropout: doubles both axes."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, dropout: float):
        super().__init__()
        self.conv = nn.ConvTranspose2d(
            in_ch, out_ch, kernel_size, stride, padding=kernel_size // 2, output_padding=stride - 1
        )
        self.norm = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.act(self.norm(self.conv(x))))


class UNetMaskNet(nn.Module):
    """U-Net mask estimator on normalised magnitude patches.

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
    ):
        super().__init__()
        widths = [first_channels * 2**i for i in range(n_layers)]
        self.encoder = nn.ModuleList(
            EncoderBlock(c_in, c_out, kernel_size, stride, leaky_slope)
            for c_in, c_out in zip([in_channels] + widths[:-1], widths)
        )
        # Decoder block i maps the (concatenated) features back to the width of encoder block
        # n_layers - 2 - i; the first block sees only the bottleneck, the others a skip as well.
        dec_in = [widths[-1]] + [2 * w for w in widths[-2:0:-1]]
        dec_out = widths[-2::-1]
        self.decoder = nn.ModuleList(
            DecoderBlock(c_in, c_out, kernel_size, stride, dropout if i < n_dropout_layers else 0.0)
            for i, (c_in, c_out) in enumerate(zip(dec_in, dec_out))
        )
        self.last = nn.ConvTranspose2d(
            2 * widths[0] if n_layers > 1 else widths[0],
            n_targets,
            kernel_size,
            stride,
            padding=kernel_size // 2,
            output_padding=stride - 1,
        )
        self.multiple = stride**n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: List[torch.Tensor] = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck is the decoder's input, not a skip
        for block in self.decoder:
            x = torch.cat([block(x), skips.pop()], dim=1)
        return torch.sigmoid(self.last(x))
