"""Latent low-rank model: K spatial maps decoded once, mixed per band by a wavelength MLP.

The cube is modelled as y(x, t) = sum_k A_k(x) B_k(t) + 0.5 (normalised units), the neural form
of what makes PCA strong on spectra (neighbouring bands are nearly redundant):
- A (K x H x W) comes from multi-resolution latent grids (level l has ceil(H / 2^l) x
  ceil(W / 2^l) integer values), each upsampled bilinearly to H x W, then a small synthesis
  network (1x1 conv, GELU, 1x1 conv, GELU, 3x3 conv). The latents are entropy-coded integers,
  so the file spends its bits where the image needs them (Cool-chic / C3 style).
- B(t) (K values) comes from the band's normalised wavelength t through a positional encoding and
  a two-layer MLP, continuous in t: `interp` evaluates it between the coded bands.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .layers import PositionalEncoding
from .base import GridConfig, MapsTimesMix


@dataclass
class LatentConfig(GridConfig):
    height: int
    width: int
    levels: int  # latent grids at scales 2^0 .. 2^(levels-1)
    first_level: int  # the finest grid kept (0 = full resolution); coarser-only at low rates
    synth_hidden: int  # width d of the synthesis network
    components: int  # K spatial maps
    mlp_hidden: int
    pe_freqs: int
    pe_base: float
    channels: int = 1  # channels of every latent grid (more when the budget can pay for them)
    kernel: int = 3
    activation: str = "gelu"
    model: str = field(default="latent")


class LatentNet(MapsTimesMix):
    def __init__(self, cfg: LatentConfig):
        super().__init__()
        if cfg.activation != "gelu":
            raise ValueError(f"unsupported activation {cfg.activation!r}")
        self.cfg = cfg
        n = cfg.levels - cfg.first_level
        self.latents = nn.ParameterList(
            nn.Parameter(torch.zeros(1, cfg.channels, *cfg.grid_shape(level)))
            for level in range(cfg.first_level, cfg.levels)
        )
        d, k = cfg.synth_hidden, cfg.components
        self.synth = nn.Sequential(
            nn.Conv2d(n * cfg.channels, d, 1), nn.GELU(), nn.Conv2d(d, d, 1), nn.GELU(),
            nn.Conv2d(d, k, cfg.kernel, padding=cfg.kernel // 2),
        )
        self.pe = PositionalEncoding(cfg.pe_freqs, cfg.pe_base)
        self.spectral = nn.Sequential(nn.Linear(self.pe.dim, cfg.mlp_hidden), nn.GELU(), nn.Linear(cfg.mlp_hidden, k))
        self.quantise = None  # training sets a function z -> z_hat (noise or straight-through rounding)

    def maps(self) -> torch.Tensor:
        """A: (K, H, W), built once per cube from the (quantised) latents."""
        size = (self.cfg.height, self.cfg.width)
        ups = []
        for z in self.latents:
            zq = self.quantise(z) if self.quantise is not None else z
            ups.append(zq if zq.shape[-2:] == size else F.interpolate(zq, size=size, mode="bilinear", align_corners=False))
        return self.synth(torch.cat(ups, dim=1))[0]

    def mix(self, t: torch.Tensor) -> torch.Tensor:
        """B: (len(t), K) mixing weights of the bands at normalised wavelengths t."""
        return self.spectral(self.pe(t))

    def rescale_latents(self, gain: float) -> None:
        """Latents x gain, first synthesis layer / gain: the same maps before rounding (rate control)."""
        with torch.no_grad():
            for z in self.latents:
                z.mul_(gain)
            self.synth[0].weight.div_(gain)


def make_config(height: int, width: int, bands: int, width_scale: float = 16.0, first_level: int = 0,
                components: int = 12, channels: int = 1) -> LatentConfig:
    """Levels from the image size (coarsest grid about 4 x 4, at most 7 levels)."""
    levels = max(1, min(7, int(math.floor(math.log2(max(1, min(height, width)) / 4))) + 1))
    n_freqs = 12
    base = max(1.05, (max(bands, 4) / 2.0) ** (1.0 / (n_freqs - 1)))
    return LatentConfig(height=height, width=width, levels=levels, first_level=min(first_level, levels - 1),
                        synth_hidden=max(4, round(width_scale)), components=components, mlp_hidden=32,
                        pe_freqs=n_freqs, pe_base=float(round(base, 6)), channels=channels)


def latent_count(cfg: LatentConfig) -> int:
    return cfg.channels * sum(h * w for h, w in (cfg.grid_shape(level) for level in range(cfg.first_level, cfg.levels)))


def count_parameters(cfg: LatentConfig) -> int:
    """Network weights only (the latents are counted by `latent_count`)."""
    n = cfg.levels - cfg.first_level
    d, k = cfg.synth_hidden, cfg.components
    synth = (n * cfg.channels + 1) * d + (d + 1) * d + (d * cfg.kernel**2 + 1) * k
    spectral = (2 * cfg.pe_freqs + 1) * cfg.mlp_hidden + (cfg.mlp_hidden + 1) * k
    return synth + spectral
