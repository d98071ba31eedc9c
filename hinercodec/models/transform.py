"""The decoder of the transform model (hinercodec/transform.py): bands = mean(t) + B(t) A.

A (K, H, W) are the wavelet-decoded component images, built once when the file is loaded; B(t)
and mean(t) are the coded per-band table interpolated between band positions by cubic Hermite
splines (finite-difference tangents), so a band at a coded position is exactly its coded row and
any other wavelength gets a smooth spectrum, which linear interpolation between bands does not.
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
        self.register_buffer("tangents", torch.zeros(cfg.bands, k + 1, dtype=torch.float64))
        self.register_buffer("positions", torch.linspace(0.0, 1.0, cfg.bands, dtype=torch.float64))
        self._raw = (np.zeros((cfg.bands, k)), np.zeros(cfg.bands))

    def load_payload(self, payload: bytes) -> None:
        """Decode the COEF payload (ValueError / CorruptFileError when it does not fit the config)."""
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
        p = p[order]
        table = np.concatenate([basis, mean[:, None]], axis=1)[order]
        slopes = np.diff(table, axis=0) / np.diff(p)[:, None] if p.size > 1 else np.zeros((0, table.shape[1]))
        tangents = np.zeros_like(table)
        if p.size > 1:
            tangents[0], tangents[-1] = slopes[0], slopes[-1]
            tangents[1:-1] = 0.5 * (slopes[:-1] + slopes[1:])
        dev = self.images.device
        self.table = torch.from_numpy(table).to(dev)
        self.tangents = torch.from_numpy(tangents).to(dev)
        self.positions = torch.from_numpy(p).to(dev)

    def maps(self) -> torch.Tensor:
        return self.images

    def mix(self, t: torch.Tensor) -> torch.Tensor:
        """(len(t), K + 1): basis row and mean at each position, cubic Hermite between bands."""
        p = self.positions
        t = t.to(torch.float64).clamp(p[0], p[-1])
        if p.numel() == 1:
            return self.table.expand(t.numel(), -1)
        i1 = torch.searchsorted(p, t).clamp(1, p.numel() - 1)
        i0 = i1 - 1
        h = (p[i1] - p[i0])[:, None]
        s = ((t - p[i0])[:, None] / h).clamp(0.0, 1.0)
        s2, s3 = s * s, s * s * s
        return ((2 * s3 - 3 * s2 + 1) * self.table[i0] + (s3 - 2 * s2 + s) * h * self.tangents[i0]
                + (3 * s2 - 2 * s3) * self.table[i1] + (s3 - s2) * h * self.tangents[i1])

    def forward(self, t: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        a = self.images if maps is None else maps
        m = self.mix(t).to(a.dtype)
        return torch.einsum("bk,khw->bhw", m[:, :-1], a) + m[:, -1][:, None, None]
