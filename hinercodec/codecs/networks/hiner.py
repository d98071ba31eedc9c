"""HINER: wavelength -> positional encoding -> MLP -> per-band embedding -> NeRV decoder -> band.

The network is a function of the band's normalised wavelength t in [0, 1]; it returns the band,
normalised to [0, 1], at the true H x W size (the decoder's output is cropped: nothing outside the
image is ever scored or stored). Everything needed to rebuild it is in `HinerConfig`, which is
written to the .hnr file as JSON; the weights are the quantised parameters in `named_parameters()`
order.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .layers import PositionalEncoding, UpsampleBlock


@dataclass
class HinerConfig:
    height: int
    width: int
    grid: tuple[int, int]  # embedding grid (h, w); h * prod(strides) >= height
    strides: list[int]  # upsampling factor of each decoder stage
    channels: list[int]  # embedding channels, then the output channels of each stage
    mlp_hidden: int  # width of the MLP's hidden layer (the rank of the spectral embedding)
    pe_freqs: int
    pe_base: float
    kernel: int = 3
    head_kernel: int = 3
    activation: str = "gelu"
    model: str = field(default="hiner")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grid"] = list(self.grid)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HinerConfig":
        d = dict(d)
        d["grid"] = tuple(d["grid"])
        return cls(**d)


class HinerNet(nn.Module):
    def __init__(self, cfg: HinerConfig):
        super().__init__()
        if cfg.activation != "gelu":
            raise ValueError(f"unsupported activation {cfg.activation!r}")
        self.cfg = cfg
        gh, gw = cfg.grid
        c0 = cfg.channels[0]
        self.pe = PositionalEncoding(cfg.pe_freqs, cfg.pe_base)
        self.mlp = nn.Sequential(
            nn.Linear(self.pe.dim, cfg.mlp_hidden),
            nn.GELU(),
            nn.Linear(cfg.mlp_hidden, c0 * gh * gw),
        )
        self.stages = nn.ModuleList(
            UpsampleBlock(cin, cout, s, cfg.kernel)
            for cin, cout, s in zip(cfg.channels[:-1], cfg.channels[1:], cfg.strides)
        )
        self.head = nn.Conv2d(cfg.channels[-1], 1, cfg.head_kernel, padding=cfg.head_kernel // 2)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) normalised wavelengths -> (B, H, W) bands in normalised units (unclamped)."""
        gh, gw = self.cfg.grid
        x = self.mlp(self.pe(t)).reshape(t.numel(), self.cfg.channels[0], gh, gw)
        for stage in self.stages:
            x = stage(x)
        x = self.head(x)[:, 0, : self.cfg.height, : self.cfg.width]
        return x + 0.5


def _stride_lists(max_stages: int = 7) -> list[tuple[int, ...]]:
    out = set()
    for n in range(2, max_stages + 1):
        for combo in itertools.combinations_with_replacement((5, 4, 3, 2), n):
            out.add(tuple(sorted(combo, reverse=True)))
    return sorted(out)


def choose_layout(height: int, width: int) -> tuple[tuple[int, int], list[int]]:
    """Pick the embedding grid and decoder strides from the image size alone.

    Minimises the padded area (decoded but cropped away) first, then prefers an embedding grid of
    about 16 cells, then small strides (a stage costs 9 * c_in * c_out * s^2 weights, so several x2
    stages are cheaper than one x4); users never choose strides.
    """
    best = None
    for strides in _stride_lists():
        s = math.prod(strides)
        gh, gw = math.ceil(height / s), math.ceil(width / s)
        if min(gh, gw) < 1 or max(gh, gw) > 10:
            continue
        if min(gh, gw) < 2 and max(height, width) >= 2 * s:
            continue
        pad = (gh * s * gw * s - height * width) / (height * width)
        cost = sum(x * x for x in strides) + 8.0 * abs(math.log((gh * gw) / 16.0))
        key = (round(pad, 3), round(cost, 3), strides)
        if best is None or key < best[0]:
            best = (key, (gh, gw), list(strides))
    if best is None:
        raise ValueError(f"no decoder layout for a {height} x {width} image")
    return best[1], best[2]


def make_config(height: int, width: int, bands: int, width_scale: float) -> HinerConfig:
    """A HINER configuration of a given size: `width_scale` sets every layer's width.

    The rate controller searches `width_scale` to meet a parameter budget; the shape of the network
    (grid, strides, channel taper) depends only on the image size.
    """
    grid, strides = choose_layout(height, width)
    c0 = max(4, round(width_scale))
    channels = [c0] + [max(4, round(width_scale * 0.8 ** (i + 1))) for i in range(len(strides))]
    hidden = max(8, round(width_scale * 1.5))
    n_freqs = 12
    base = max(1.05, (max(bands, 4) / 2.0) ** (1.0 / (n_freqs - 1)))
    return HinerConfig(height=height, width=width, grid=grid, strides=strides, channels=channels,
                       mlp_hidden=hidden, pe_freqs=n_freqs, pe_base=float(round(base, 6)))


def count_parameters(cfg: HinerConfig) -> int:
    gh, gw = cfg.grid
    n = (2 * cfg.pe_freqs + 1) * cfg.mlp_hidden + (cfg.mlp_hidden + 1) * cfg.channels[0] * gh * gw
    for cin, cout, s in zip(cfg.channels[:-1], cfg.channels[1:], cfg.strides):
        n += (cin * cfg.kernel**2 + 1) * cout * s * s
    n += cfg.channels[-1] * cfg.head_kernel**2 + 1
    return n
