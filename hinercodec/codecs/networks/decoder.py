"""The decoder of the network codecs (hiner, latent, lowrank): the network rebuilt from MODL and
TENS, run one band at a time on the chosen torch device."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ...device import resolve_device
from .models import build
from .quant import load_quantized


class NetworkDecoder:
    """`render(t)`: the network's bands at positions t, (K, H, W) float32 clamped to [0, 1].
    ValueError when the configuration and the weights do not fit together (a damaged file)."""

    def __init__(self, config: dict, tensors: list, positions: np.ndarray, units: tuple, device: str = "cpu"):
        self.device = resolve_device(device)
        model = build(config)
        load_quantized(model, tensors)
        self.height, self.width = model.cfg.height, model.cfg.width
        self.model = model.to(self.device).eval()
        if hasattr(model, "set_band_positions"):
            self.model.set_band_positions(torch.from_numpy(np.asarray(positions, np.float32)).to(self.device))
        self._shared: Optional[torch.Tensor] = None

    def render(self, t: np.ndarray, rect: Optional[tuple[int, int, int, int]] = None) -> np.ndarray:
        """One band per call: torch's CPU kernels may round differently for other batch sizes, and a
        band must decode to the same values whichever other bands are asked for."""
        outs = []
        with torch.no_grad():
            if self._shared is None and hasattr(self.model, "maps"):
                self._shared = self.model.maps()  # built once for all bands
            for v in np.asarray(t, np.float32).reshape(-1):
                tt = torch.tensor([v], dtype=torch.float32, device=self.device)
                pred = self.model(tt) if self._shared is None else self.model(tt, self._shared)
                outs.append(pred.clamp_(0.0, 1.0).cpu().numpy())
        y = np.concatenate(outs, axis=0) if outs else np.zeros((0, self.height, self.width), np.float32)
        return y if rect is None else y[:, rect[0]:rect[1], rect[2]:rect[3]]
