"""ASW: adaptive spectral weighting of a decoded cube before the classifier.

Compression errs unevenly across bands (a neural codec smooths some spectral regions more than
others). ASW learns, from each patch's mean spectrum, one weight per band, then a 1x1-conv MLP that
mixes bands, added back to its input (residual). Trained with the classifier under
`L_cls + beta * L1(ASW(x), x)`, it may only move the decoded data as far as the task repays, and
needs no ground-truth cube.
"""
from __future__ import annotations

import torch
from torch import nn


class ASW(nn.Module):
    """B x C x P x P -> same shape; the identity at initialisation."""

    def __init__(self, bands: int, hidden: int = 0):
        super().__init__()
        hidden = hidden or max(8, min(64, bands // 2))
        self.weights = nn.Sequential(nn.Linear(bands, hidden), nn.ReLU(), nn.Linear(hidden, bands))
        self.mix = nn.Sequential(nn.Conv2d(bands, hidden, 1), nn.GELU(), nn.Conv2d(hidden, bands, 1))
        with torch.no_grad():  # start where the classifier alone would: weights 1, mix 0
            self.weights[-1].weight.zero_()
            self.weights[-1].bias.zero_()
            self.mix[-1].weight.zero_()
            self.mix[-1].bias.zero_()

    def band_weights(self, x: torch.Tensor) -> torch.Tensor:
        """B x C weights in (0, 2) from the patch's mean spectrum; 1 = band left as it is."""
        return 2.0 * torch.sigmoid(self.weights(x.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(x * self.band_weights(x)[:, :, None, None])
