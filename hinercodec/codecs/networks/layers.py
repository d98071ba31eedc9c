"""Building blocks shared by the models: wavelength encoding and NeRV-style upsampling stages."""
from __future__ import annotations

import math

import torch
from torch import nn


class PositionalEncoding(nn.Module):
    """Maps a normalised wavelength t in [0, 1] to [sin(pi b^i t), cos(pi b^i t)] for i < n_freqs.

    Frequencies grow geometrically (base `base`) so that the MLP sees both the smooth trend across the
    spectrum and detail at the scale of one band; the features are continuous in t, which is what lets
    `interp` ask for wavelengths between the coded bands. n_freqs = 0: no encoding, t itself is the
    one feature (the paper's Fig. 11 ablation; benchmarks/hiner_ablation.py variant `nope`).
    """

    def __init__(self, n_freqs: int, base: float):
        super().__init__()
        freqs = torch.tensor([math.pi * base**i for i in range(n_freqs)], dtype=torch.float32)
        self.register_buffer("freqs", freqs, persistent=False)

    @property
    def dim(self) -> int:
        return 2 * self.freqs.numel() if self.freqs.numel() else 1

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if self.freqs.numel() == 0:
            return t.reshape(-1, 1)
        angles = t.reshape(-1, 1) * self.freqs.reshape(1, -1)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class UpsampleBlock(nn.Module):
    """conv (c_in -> c_out * s^2) -> pixel shuffle (x s) -> GELU: one NeRV decoder stage."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out * stride * stride, kernel, padding=kernel // 2)
        self.shuffle = nn.PixelShuffle(stride)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))
