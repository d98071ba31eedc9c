"""Low-rank model: K component maps coded directly as multi-resolution integer latents.

y(x, t) = sum_k A_k(x) B_k(t) + 0.5, as in models.latent, but with no synthesis network between
the latents and the maps: A_k is the sum over levels of its own latent grid (level l has
ceil(H / 2^l) x ceil(W / 2^l) integers), upsampled bilinearly and scaled by a learned step per
level and component. Why: a synthesis network fed by a few latent channels gives every map the
same fine detail, so the spectral rank of the fine detail is the number of channels; measured on
Samson with unquantised latents, that capped the latent model near 46-48 dB where a free rank-32
factorisation reaches 54.6 dB. Here each component has its own pyramid, and the rate term with a
Laplace scale per level and component decides how many bits each component's detail is worth
(what PCA + JPEG 2000 does with its per-component rate allocation).

B(t) is a two-layer MLP of the positional encoding of t (smooth, continuous in t) plus a table of
per-band corrections, interpolated linearly between the coded bands' positions (so B stays
continuous in t and `interp` still works between bands).
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
class LowRankConfig(GridConfig):
    height: int
    width: int
    bands: int
    levels: int  # latent grids at scales 2^0 .. 2^(levels-1), each with `components` channels
    components: int  # K maps
    mlp_hidden: int
    pe_freqs: int
    pe_base: float
    model: str = field(default="lowrank")


class LowRankNet(MapsTimesMix):
    """Latents: one grid per level and component, level-major (latents[l * K + k] is (1, 1, h_l, w_l)),
    so that each is entropy-coded with its own table and has its own rate scale: components differ
    in spread by orders of magnitude, and one table for a level's K components cost 25-30 % more
    bytes on Samson."""

    def __init__(self, cfg: LowRankConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.components
        self.latents = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, *cfg.grid_shape(level))) for level in range(cfg.levels) for _ in range(k))
        self.log_step = nn.Parameter(torch.full((cfg.levels, k), math.log(0.02)))
        self.pe = PositionalEncoding(cfg.pe_freqs, cfg.pe_base)
        self.spectral = nn.Sequential(nn.Linear(self.pe.dim, cfg.mlp_hidden), nn.GELU(), nn.Linear(cfg.mlp_hidden, k))
        self.table = nn.Parameter(torch.zeros(cfg.bands, k))
        self.register_buffer("band_t", torch.linspace(0, 1, cfg.bands), persistent=False)
        self.quantise = None  # training sets a function z -> z_hat (noise or straight-through rounding)

    def set_band_positions(self, t: torch.Tensor) -> None:
        """The coded bands' positions t_i (the table's rows), from the file's WAVE chunk."""
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
        if t.numel() != self.cfg.bands:
            raise ValueError(f"{t.numel()} band positions for a model of {self.cfg.bands} bands")
        self.band_t = t.to(self.table.device)

    def maps(self) -> torch.Tensor:
        """A: (K, H, W) from the (quantised) latents."""
        size = (self.cfg.height, self.cfg.width)
        k = self.cfg.components
        out = None
        for level in range(self.cfg.levels):
            grids = self.latents[level * k:(level + 1) * k]
            zq = torch.cat([self.quantise(z) if self.quantise is not None else z for z in grids], dim=1)
            zq = zq * torch.exp(self.log_step[level])[None, :, None, None]
            up = zq if zq.shape[-2:] == size else F.interpolate(zq, size=size, mode="bilinear", align_corners=False)
            out = up if out is None else out + up
        return out[0]

    def _table_at(self, t: torch.Tensor) -> torch.Tensor:
        """Table rows linearly interpolated at t (exact at the coded bands, constant beyond the ends)."""
        pos, order = torch.sort(self.band_t)
        rows = self.table[order]
        if rows.shape[0] == 1:
            return rows.expand(t.numel(), -1)
        hi = torch.searchsorted(pos, t.reshape(-1)).clamp(1, rows.shape[0] - 1)
        lo = hi - 1
        span = (pos[hi] - pos[lo]).clamp_min(1e-12)
        w = ((t.reshape(-1) - pos[lo]) / span).clamp(0, 1)[:, None]
        return rows[lo] * (1 - w) + rows[hi] * w

    def mix(self, t: torch.Tensor) -> torch.Tensor:
        """B: (len(t), K) mixing weights of the bands at normalised wavelengths t."""
        return self.spectral(self.pe(t)) + self._table_at(t)

    def rescale_latents(self, gain: float) -> None:
        """Latents x gain, steps / gain: the same maps before rounding (rate control)."""
        with torch.no_grad():
            for z in self.latents:
                z.mul_(gain)
            self.log_step.sub_(math.log(gain))


def make_config(height: int, width: int, bands: int, width_scale: float = 16.0) -> LowRankConfig:
    """Levels from the image size (coarsest grid about 4 x 4, at most 7); K = width_scale (<= bands)."""
    levels = max(1, min(7, int(math.floor(math.log2(max(1, min(height, width)) / 4))) + 1))
    n_freqs = 12
    base = max(1.05, (max(bands, 4) / 2.0) ** (1.0 / (n_freqs - 1)))
    return LowRankConfig(height=height, width=width, bands=bands, levels=levels,
                         components=int(max(1, min(bands, round(width_scale)))), mlp_hidden=32,
                         pe_freqs=n_freqs, pe_base=float(round(base, 6)))


def latent_count(cfg: LowRankConfig) -> int:
    return cfg.components * sum(h * w for h, w in (cfg.grid_shape(level) for level in range(cfg.levels)))


def count_parameters(cfg: LowRankConfig) -> int:
    """Weights only (the latents are counted by `latent_count`)."""
    k = cfg.components
    return cfg.levels * k + (2 * cfg.pe_freqs + 1) * cfg.mlp_hidden + (cfg.mlp_hidden + 1) * k + cfg.bands * k
