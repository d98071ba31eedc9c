"""What every encoder gets and gives: the prepared job (numpy) and the byte budget.

An encoder is a function `encode(job) -> (file bytes, stats)`: the bytes of a complete
stand-alone .hnr file whose size is inside PROTOCOL.md's rate window, or RequestError.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import RequestError
from ..formats.hnrfile import HnrFile, pack
from ..formats.tensors import QuantTensor

LOW = 0.9  # PROTOCOL.md's lower edge of the rate window


@dataclass
class Budget:
    bytes: int  # the most bytes the file may have
    floor: int  # the fewest bytes that still meet the target

    @classmethod
    def from_bpppb(cls, bpppb: float, shape: tuple[int, int, int]) -> "Budget":
        n = shape[0] * shape[1] * shape[2]
        most = int(math.floor(bpppb * n / 8.0))
        return cls(bytes=most, floor=int(math.ceil(LOW * bpppb * n / 8.0)))


@dataclass
class Job:
    """One cube (or tile) to encode, prepared: normalised to [0, 1] per band, positions, budget."""

    shape: tuple[int, int, int]
    dtype: np.dtype
    offset: np.ndarray  # float32 [C]
    scale: np.ndarray  # float32 [C]
    wavelengths: Optional[np.ndarray]
    target: Optional[np.ndarray]  # (C, H, W) float32, normalised; None for a codec that reads `cube` only
    t: np.ndarray  # (C,) float32 band positions in [0, 1]
    budget: Budget
    options: object  # options.EncodeOptions
    report: Callable  # (stage, step, total, loss, psnr, note) -> None
    seed: int = 0  # tiles: the options' seed plus the tile index
    encoder: str = "hinerc"  # the `meta` encoder string
    cube: Optional[np.ndarray] = None  # H x W x C original values (whole cubes; the lossless codec needs them)
    valid: Optional[np.ndarray] = None  # H x W bool: the pixels that are data (None: all); a codec may
    # leave the others out of its basis and distortion and spend no bits on them (they decode as nodata)
    plan: Optional[dict] = None  # what a codec's search found on a sample of the whole cube (tiles of a
    # large one: registry.Codec.planner), so that each tile searches only what remains (the step)
    keep: Optional[dict] = None  # where a codec may leave what its caller's own measure can use instead of
    # decoding the file: "coefficients", the integer pyramid the payload codes (the transform codec)

    def pack(self, config: dict, tensors: list[QuantTensor], payload: Optional[bytes] = None) -> bytes:
        """The stand-alone file: network weights in TENS (format 1.0), or a codec's own bitstream
        in CODE (format 1.1)."""
        h, w, c = self.shape
        return pack(HnrFile(height=h, width=w, bands=c, dtype=np.dtype(self.dtype), band_offset=self.offset,
                            band_scale=self.scale,
                            wavelengths=None if self.wavelengths is None else np.asarray(self.wavelengths, np.float64),
                            model_config=config, tensors=tensors, meta={"encoder": self.encoder}, payload=payload))

    def pack_payload(self, config: dict, payload: bytes) -> bytes:
        """A codec with its own bitstream: its payload in a CODE chunk."""
        return self.pack(config, [], payload)

    def bpppb_of(self, n_bytes: int) -> float:
        return 8.0 * n_bytes / (self.shape[0] * self.shape[1] * self.shape[2])

    def too_low(self, model: str, smallest: int) -> RequestError:
        h, w, c = self.shape
        return RequestError(f"the rate target is too low for a {h} x {w} x {c} cube: the smallest {model} file "
                            f"is about {self.bpppb_of(smallest):.3f} bpppb")


def stored_tensor(payload: bytes) -> QuantTensor:
    """A payload as one 8-bit byte tensor: how tiles (TILE chunks hold TENS payloads) and the
    files of hinerc 0.3-0.4 carry it."""
    return QuantTensor(shape=(len(payload),), bits=8, symbols=np.frombuffer(payload, np.uint8).astype(np.int64),
                       offset=np.zeros(1, np.float32), step=np.ones(1, np.float32), name="payload")


def payload_of(tensors: list) -> bytes:
    """The payload of a codec with its own bitstream, from the TENS form (one 8-bit byte tensor)."""
    if len(tensors) != 1 or tensors[0].bits != 8 or len(tensors[0].shape) != 1:
        raise ValueError("expected one 8-bit payload tensor")
    return np.asarray(tensors[0].symbols, np.uint8).tobytes()
