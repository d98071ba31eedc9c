"""The decoder of the transform model (hinercodec/transform.py): bands = mean(t) + B(t) A.

A (K, H, W) are the wavelet-decoded component images, built once when the file is loaded; the band
at a coded position is mean_c + B_c A. Between coded positions each pixel's spectrum is an Akima
spline through the six nearest decoded bands: C1 in wavelength, exact at the coded bands, and
without the overshoot of plain cubic splines at sharp spectral features. (On decoded bands it
measures the same as linear interpolation, -0.1 to +0.2 dB: benchmarks/interp.py.)
Nothing here is fitted by gradient descent: the module exists so that the decoder runs every
model the same way (maps() once, then forward(t, maps) per band) on the CPU or a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .base import GridConfig


@dataclass
class TransformConfig(GridConfig):
    height: int
    width: int
    bands: int
    components: int
    levels: int
    step_code: int
    basis_exps: list
    mean_exp: int
    offsets: list
    model: str = "transform"


def make_config(height: int, width: int, bands: int, width_scale: float) -> TransformConfig:
    """Placeholder sizing (the transform encoder sizes itself from the byte budget)."""
    k = max(1, min(bands, int(width_scale)))
    return TransformConfig(height, width, bands, k, 0, 0, [0] * k, 0, [0])


def count_parameters(cfg: TransformConfig) -> int:
    return 0


class TransformNet(nn.Module):
    def __init__(self, cfg: TransformConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.components
        self.register_buffer("images", torch.zeros(k, cfg.height, cfg.width))
        self.register_buffer("table", torch.zeros(cfg.bands, k + 1, dtype=torch.float64))  # [basis | mean]
        self.register_buffer("positions", torch.linspace(0.0, 1.0, cfg.bands, dtype=torch.float64))
        self._raw = (np.zeros((cfg.bands, k)), np.zeros(cfg.bands))

    def load_payload(self, payload: bytes) -> None:
        """Decode the model's payload (ValueError / CorruptFileError when it does not fit the config)."""
        from ..transform import decode_payload  # numpy-only; kept out of the module import

        images, basis, mean = decode_payload(self.cfg.to_dict(), payload)
        self.images.copy_(torch.from_numpy(images))
        self._raw = (basis, mean)
        self._set_table(np.arange(self.cfg.bands) / max(self.cfg.bands - 1, 1))

    def set_band_positions(self, positions: torch.Tensor) -> None:
        p = np.asarray(positions.detach().cpu().numpy(), np.float64)
        if p.shape != (self.cfg.bands,) or not np.isfinite(p).all() or np.unique(p).size != p.size:
            raise ValueError("band positions must be distinct finite values, one per band")
        self._set_table(p)

    def _set_table(self, p: np.ndarray) -> None:
        basis, mean = self._raw
        order = np.argsort(p)
        dev = self.images.device
        self.table = torch.from_numpy(np.concatenate([basis, mean[:, None]], axis=1)[order]).to(dev)
        self.positions = torch.from_numpy(p[order]).to(dev)

    def maps(self) -> torch.Tensor:
        return self.images

    def _band(self, a: torch.Tensor, i: int) -> torch.Tensor:
        row = self.table[i].to(a.dtype)
        return torch.einsum("k,khw->hw", row[:-1], a) + row[-1]

    def _at(self, a: torch.Tensor, t: float) -> torch.Tensor:
        """The band at position t: a coded band, or the Akima spline between them."""
        p = self.positions
        n = p.numel()
        t = min(max(t, float(p[0])), float(p[-1]))
        if n == 1:
            return self._band(a, 0)
        i1 = int(torch.searchsorted(p, torch.tensor([t], dtype=p.dtype, device=p.device))[0].clamp(1, n - 1))
        i0 = i1 - 1
        h = float(p[i1] - p[i0])
        s = (t - float(p[i0])) / h
        if s <= 0.0:
            return self._band(a, i0)
        if s >= 1.0:
            return self._band(a, i1)
        lo, hi = max(i0 - 2, 0), min(i0 + 3, n - 1)
        y = {j: self._band(a, j) for j in range(lo, hi + 1)}
        d = {g: (y[g + 1] - y[g]) / float(p[g + 1] - p[g]) for g in range(lo, hi)}
        for g in range(i0 - 1, i0 - 3, -1):  # Akima's end rule: slopes continue linearly
            if g not in d:
                d[g] = 2 * d[g + 1] - d[g + 2] if g + 2 in d else d[g + 1]
        for g in range(i0 + 1, i0 + 3):
            if g not in d:
                d[g] = 2 * d[g - 1] - d[g - 2] if g - 2 in d else d[g - 1]

        def tangent(g: int) -> torch.Tensor:  # at the knot between segments g - 1 and g
            w1, w2 = (d[g + 1] - d[g]).abs(), (d[g - 1] - d[g - 2]).abs()
            total = w1 + w2
            mixed = (w1 * d[g - 1] + w2 * d[g]) / torch.where(total > 0, total, torch.ones_like(total))
            return torch.where(total > 0, mixed, 0.5 * (d[g - 1] + d[g]))

        s2, s3 = s * s, s * s * s
        return ((2 * s3 - 3 * s2 + 1) * y[i0] + (s3 - 2 * s2 + s) * h * tangent(i0)
                + (3 * s2 - 2 * s3) * y[i1] + (s3 - s2) * h * tangent(i1))

    def forward(self, t: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        """t: (B,) positions -> (B, H, W) bands in normalised units (unclamped)."""
        a = self.images if maps is None else maps
        return torch.stack([self._at(a, v) for v in t.to(torch.float64).tolist()])
