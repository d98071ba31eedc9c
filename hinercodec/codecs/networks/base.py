"""What the latent-grid models share: config JSON (MODL) and grid sizes, and the low-rank band form."""
from __future__ import annotations

import math
from dataclasses import asdict

import torch
from torch import nn


class GridConfig:
    """Mixin for dataclass configs with `height` and `width`: MODL's JSON and the latent grid sizes."""

    height: int
    width: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        return cls(**d)

    def grid_shape(self, level: int) -> tuple[int, int]:
        """Rows and columns of the grid at scale 2^level: ceil(H / 2^l) x ceil(W / 2^l)."""
        return math.ceil(self.height / 2**level), math.ceil(self.width / 2**level)


class MapsTimesMix(nn.Module):
    """y(t) = sum_k B_k(t) A_k + 0.5: subclasses give maps() -> A (K, H, W) and mix(t) -> B (len(t), K)."""

    def forward(self, t: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        """t: (B,) -> (B, H, W) bands in normalised units (unclamped); `maps` reuses A across calls."""
        a = self.maps() if maps is None else maps
        return torch.einsum("bk,khw->bhw", self.mix(t), a) + 0.5
