"""Post-training quantisation of a model's parameters to integer symbols (and back).

Affine quantisation: w ~ offset + step * q, q in [0, 2^bits - 1], with (offset, step) per tensor or
per output channel (axis 0). `step_scale` >= 1 widens the step beyond the min/max grid, trading
precision for bits; the rate controller uses it to land the coded file inside the rate window
without refitting.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...formats.tensors import QuantTensor


def quantize_array(w: np.ndarray, bits: int, per_channel: bool, step_scale: float = 1.0) -> QuantTensor:
    w = np.asarray(w, dtype=np.float32)
    groups = w.reshape(w.shape[0], -1) if (per_channel and w.ndim > 1) else w.reshape(1, -1)
    lo = groups.min(axis=1)
    hi = groups.max(axis=1)
    levels = 2**bits - 1
    flat = hi <= lo  # a constant group (e.g. a single bias) is exact at q = 0 with offset = value
    step = np.where(flat, np.float32(1.0), (hi - lo) / levels * step_scale).astype(np.float32)
    # Centre the (possibly widened) grid on the data range so both ends round inwards equally.
    offset = np.where(flat, lo, (lo + hi) / 2 - step * levels / 2).astype(np.float32)
    q = np.rint((groups - offset[:, None]) / step[:, None])
    q = np.clip(q, 0, levels).astype(np.uint16)
    return QuantTensor(shape=tuple(w.shape), bits=bits, symbols=q.reshape(w.shape), offset=offset, step=step)


def quantize_best(w: np.ndarray, bits: int, step_scale: float = 1.0, max_share: float = 0.02) -> QuantTensor:
    """Per output channel when that has the smaller squared error and its (offset, step) pairs are
    few (under `max_share` of the values, as the official HINER code decides), else per tensor."""
    w = np.asarray(w, dtype=np.float32)
    whole = quantize_array(w, bits, False, step_scale)
    if w.ndim < 2 or w.shape[0] > max_share * w.size:
        return whole
    rows = quantize_array(w, bits, True, step_scale)
    err = lambda qt: float(((qt.dequantize() - w) ** 2).sum())  # noqa: E731
    return rows if err(rows) < err(whole) else whole


def quantize_model(model: nn.Module, bits: int, per_channel: bool | str = False,
                   step_scale: float = 1.0) -> list[QuantTensor]:
    """All parameters in `named_parameters()` order (the order the file format relies on).
    `per_channel`: False (per tensor), True (per output channel) or "best" (quantize_best)."""
    out = []
    for name, p in model.named_parameters():
        w = p.detach().cpu().numpy()
        if per_channel == "best":
            qt = quantize_best(w, bits, step_scale)
        else:
            qt = quantize_array(w, bits, bool(per_channel), step_scale)
        qt.name = name
        out.append(qt)
    return out


def load_quantized(model: nn.Module, tensors: list[QuantTensor]) -> nn.Module:
    """Write dequantised values into `model`'s parameters; shapes must match in order."""
    params = list(model.named_parameters())
    if len(params) != len(tensors):
        raise ValueError(f"model has {len(params)} parameters, file has {len(tensors)} tensors")
    with torch.no_grad():
        for (name, p), qt in zip(params, tensors):
            if tuple(p.shape) != tuple(qt.shape):
                raise ValueError(f"tensor {name}: file shape {tuple(qt.shape)} != model shape {tuple(p.shape)}")
            p.copy_(torch.from_numpy(qt.dequantize()).to(p.device, p.dtype))
    return model


def quantize_integer(z: np.ndarray) -> QuantTensor:
    """Integer-valued latents as symbols z - min (step 1), so dequantisation returns them exactly."""
    z = np.asarray(z)
    lo = int(z.min()) if z.size else 0
    span = int(z.max()) - lo if z.size else 0
    bits = max(1, int(span).bit_length())
    if bits > 16:
        raise ValueError(f"latent range {span} does not fit 16-bit symbols")
    return QuantTensor(shape=tuple(z.shape), bits=bits, symbols=(z - lo).astype(np.uint16),
                       offset=np.array([lo], np.float32), step=np.array([1.0], np.float32))
