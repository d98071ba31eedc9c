"""Common interface of the codec adapters and the helpers every classical adapter shares.

Every adapter writes ONE file holding every byte needed to decode (PROTOCOL.md "Rate") and decodes
from that file only, so the measured size and the measured distortion always belong together.
"""
from __future__ import annotations

import math
import struct
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from hinercodec.metrics import distortion


class CodecError(RuntimeError):
    """An adapter could not produce or read its file (the point is reported with this message)."""


@dataclass
class Job:
    """One cube to benchmark: the array for in-process codecs, the path for CLI codecs."""

    cube: np.ndarray  # H x W x C in its stored dtype
    path: Path  # the cube file as given on the command line
    workdir: Path  # scratch space for this cube


class Codec(ABC):
    """A codec under test. `search` picks settings, `encode` writes the file, `decode` reads it back."""

    name: str = ""
    suffix: str = ".bin"  # of the compressed file the harness writes

    def unavailable(self) -> Optional[str]:
        """Why this codec cannot run here (missing tool or library), or None when it can."""
        return None

    @abstractmethod
    def search(self, job: Job, target_bpppb: float) -> dict:
        """Settings (JSON-serialisable) whose file best meets the rate target."""

    @abstractmethod
    def encode(self, job: Job, settings: dict, out: Path) -> None:
        """Write the complete compressed file for `settings` to `out` (timed by the harness)."""

    @abstractmethod
    def decode(self, path: Path, workdir: Path) -> np.ndarray:
        """The cube rebuilt from the file alone, in the original dtype (timed by the harness)."""


def log(msg: str) -> None:
    """Progress goes to stderr so that stdout keeps only the results table."""
    print(msg, file=sys.stderr, flush=True)


# ---- byte layout shared by the classical adapters -------------------------------------------------

def pack(parts: Sequence[bytes]) -> bytes:
    """Concatenate byte strings behind a small header: count, length width (2 or 4), lengths."""
    width = 2 if all(len(p) < 1 << 16 for p in parts) else 4
    fmt = "<H" if width == 2 else "<I"
    head = struct.pack("<IB", len(parts), width) + b"".join(struct.pack(fmt, len(p)) for p in parts)
    return head + b"".join(parts)


def unpack(data: bytes) -> list[bytes]:
    """Inverse of `pack`; raises CodecError on a truncated or padded file."""
    if len(data) < 5:
        raise CodecError(f"file of {len(data)} bytes is too short")
    n, width = struct.unpack_from("<IB", data)
    lengths = struct.unpack_from(f"<{n}{'H' if width == 2 else 'I'}", data, 5)
    pos = 5 + width * n
    parts = []
    for length in lengths:
        parts.append(data[pos:pos + length])
        pos += length
    if pos != len(data):
        raise CodecError(f"file is {len(data)} bytes, its header says {pos}")
    return parts


def pack_meta(shape: tuple[int, int, int], dtype: np.dtype, extra: Sequence[int] = ()) -> bytes:
    """Shape, dtype and a few small integers (e.g. k) as the first part of a file."""
    dt = np.dtype(dtype).str.encode()
    return struct.pack(f"<3IB{len(extra)}I", *shape, len(dt), *extra) + dt


def unpack_meta(blob: bytes, n_extra: int = 0) -> tuple[tuple[int, int, int], np.dtype, tuple[int, ...]]:
    """Inverse of `pack_meta`."""
    fmt = f"<3IB{n_extra}I"
    vals = struct.unpack_from(fmt, blob)
    off = struct.calcsize(fmt)
    dt = np.dtype(blob[off:off + vals[3]].decode())
    return (vals[0], vals[1], vals[2]), dt, tuple(vals[4:])


# ---- per-band normalisation (min/max stored as float32, so encoder and decoder agree exactly) ------

def band_range(cube: np.ndarray) -> np.ndarray:
    """Per-band (min, max) as a 2 x C float32 array; the decoder gets exactly these values."""
    return np.stack([cube.min(axis=(0, 1)), cube.max(axis=(0, 1))]).astype(np.float32)


def to_unit(cube: np.ndarray, rng: np.ndarray) -> np.ndarray:
    """Map each band to [0, 1] with its stored min/max (constant bands map to 0)."""
    lo = rng[0].astype(np.float64)
    span = rng[1].astype(np.float64) - lo
    return (cube.astype(np.float64) - lo) / np.where(span > 0, span, 1.0)


def from_unit(unit: np.ndarray, rng: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Inverse of `to_unit`, restoring the original dtype (integers rounded and clipped)."""
    lo = rng[0].astype(np.float64)
    span = rng[1].astype(np.float64) - lo
    return restore_dtype(unit * span + lo, dtype)


def restore_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast decoded float values to `dtype`, rounding and clipping for integer types."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


# ---- rate search ----------------------------------------------------------------------------------

def target_bytes(target_bpppb: float, shape: tuple[int, ...]) -> int:
    """Largest file size (bytes) whose true bpppb is still <= the target."""
    h, w, c = shape
    return int(math.floor(target_bpppb * h * w * c / 8.0 + 1e-9))


@dataclass
class Trial:
    knob: float
    data: bytes


def bisect_knob(encode: Callable[[float], bytes], lo: float, hi: float, budget: int, *,
                log_scale: bool = False, iters: int = 14, close: float = 0.97) -> Trial:
    """Bisection on a knob whose file size falls as the knob rises (crf, compression ratio).

    Returns the largest file that fits `budget` (stopping early once one is within `close` of it);
    if none fits, the smallest file seen, which the harness then reports as "not met".
    """
    f = (lambda v: math.log(v)) if log_scale else (lambda v: v)
    g = (lambda u: math.exp(u)) if log_scale else (lambda u: u)
    a, b = f(lo), f(hi)
    best_fit: Optional[Trial] = None
    smallest: Optional[Trial] = None

    def consider(u: float) -> Trial:
        nonlocal best_fit, smallest
        trial = Trial(g(u), encode(g(u)))
        n = len(trial.data)
        if n <= budget and (best_fit is None or n > len(best_fit.data)):
            best_fit = trial
        if smallest is None or n < len(smallest.data):
            smallest = trial
        return trial

    if len(consider(b).data) > budget:  # even the lowest rate is too big
        return smallest  # type: ignore[return-value]
    if len(consider(a).data) <= budget:  # even the highest rate fits
        return best_fit  # type: ignore[return-value]
    for _ in range(iters):
        mid = 0.5 * (a + b)
        n = len(consider(mid).data)
        if n > budget:
            a = mid
        else:
            b = mid
            if n >= close * budget:
                break
    return best_fit  # type: ignore[return-value]


class ClassicalCodec(Codec):
    """An in-process codec: bytes in memory during the search, one file for the measured point.

    Subclasses list candidate settings (e.g. each k, each tune) and bisect one rate knob per
    candidate; the candidate whose decoded cube has the highest PSNR_band wins.
    """

    knob: str = ""
    knob_range: tuple[float, float] = (0.0, 1.0)
    knob_log: bool = False
    patience: int = 2  # candidates in a row worse than the best before the scan stops

    @abstractmethod
    def prepare(self, cube: np.ndarray) -> Any:
        """Work shared by every setting of one cube (normalisation, PCA basis)."""

    @abstractmethod
    def encode_prepared(self, prep: Any, settings: dict) -> bytes:
        """The complete file for `settings`."""

    @abstractmethod
    def decode_bytes(self, data: bytes) -> np.ndarray:
        """The cube from a complete file."""

    def candidates(self, cube: np.ndarray, budget: int) -> Iterable[dict]:
        """Fixed settings to try, in an order where PSNR is roughly unimodal."""
        return [{}]

    def search(self, job: Job, target_bpppb: float) -> dict:
        budget = target_bytes(target_bpppb, job.cube.shape)
        prep = self.prepare(job.cube)
        best: Optional[tuple[tuple[bool, float], dict]] = None
        worse = 0
        for fixed in self.candidates(job.cube, budget):
            trial = bisect_knob(lambda v: self.encode_prepared(prep, {**fixed, self.knob: v}),
                                *self.knob_range, budget, log_scale=self.knob_log)
            fits = len(trial.data) <= budget
            psnr = distortion(job.cube, self.decode_bytes(trial.data)).psnr_band
            settings = {**fixed, self.knob: trial.knob}
            # a setting that fits always beats one that does not; then the higher PSNR wins
            score = (fits, psnr if fits else -len(trial.data))
            if best is None or score > best[0]:
                best, worse = (score, settings), 0
            else:
                worse += 1
                if worse >= self.patience:
                    break
        if best is None:
            raise CodecError("no candidate setting for this cube")
        return best[1]

    def encode(self, job: Job, settings: dict, out: Path) -> None:
        out.write_bytes(self.encode_prepared(self.prepare(job.cube), settings))

    def decode(self, path: Path, workdir: Path) -> np.ndarray:
        return self.decode_bytes(path.read_bytes())
