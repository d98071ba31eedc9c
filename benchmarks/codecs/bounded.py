"""Lossless and error-bounded codecs for benchmarks/lossless.py: hinerc's `lossless` model and the anchors
of issue 19 (CCSDS 123.0-B-2 through the shared runner, JPEG-LS, JPEG XL, JPEG 2000 reversible, zstd on
band differences, LERC, SZ3).

Interface (BoundedCodec): `encode(cube, bounds) -> bytes` writes ONE file holding every byte needed to
decode (shape, dtype, per-band streams: PROTOCOL.md "Rate"); `decode(data) -> cube` reads it back in the
original dtype. `bounds` has one value per band in the cube's units (integers for integer cubes); all zero
means lossless (float cubes: the same bits). `unsupported(cube, bounds)` says why a codec cannot code this
cube at these bounds (missing library, no lossless mode, sample type), or None. A codec that cannot hold a
per-band bound uses the smallest one (still a guarantee for every band). CCSDS 123 runs out of process on
the cube's file (`run_file`), as the shared runner measures it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Optional

import numpy as np

from .base import pack, pack_meta, unpack, unpack_meta

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CCSDS_RUNNER = os.path.join(ROOT, "..", "shared", "anchors", "ccsds123_run.py")


def _imagecodecs(codec: str) -> Optional[str]:
    try:
        import imagecodecs
    except ImportError as exc:
        return f"imagecodecs is not installed ({exc})"
    c = getattr(imagecodecs, codec, None)
    if c is None or not getattr(c, "available", False):
        return f"imagecodecs {imagecodecs.__version__} was built without {codec}"
    return None


def _bands(cube: np.ndarray):
    return [np.ascontiguousarray(cube[:, :, c]) for c in range(cube.shape[2])]


def _exact(bounds: np.ndarray) -> bool:
    return not np.any(np.asarray(bounds) > 0)


class BoundedCodec:
    name = ""
    lossless_only = False

    def unavailable(self) -> Optional[str]:
        return None

    def unsupported(self, cube: np.ndarray, bounds: np.ndarray) -> Optional[str]:
        why = self.unavailable()
        if why:
            return why
        if self.lossless_only and not _exact(bounds):
            return "lossless only"
        return self.refuses(cube, bounds)

    def refuses(self, cube: np.ndarray, bounds: np.ndarray) -> Optional[str]:
        return None

    def encode(self, cube: np.ndarray, bounds: np.ndarray) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        raise NotImplementedError


# ---------------------------------------------------------------- hinerc

class Hinerc(BoundedCodec):
    """The complete .hnr file of model `lossless` (container, BNDS, WAVE, MODL, CODE), read back by the
    library's decoder (hinercodec.api.decode)."""

    name = "hinerc"

    def encode(self, cube, bounds):
        from formats.hnrfile import HnrFile, pack as pack_file
        from hinercodec import __version__
        from hinercodec.codecs.lossless import codec, coder
        from hinercodec.cube import band_ranges

        bounds = np.asarray(bounds)
        bounds = bounds.astype(np.int64) if cube.dtype.kind in "iu" else bounds.astype(np.float64)
        offset, scale = band_ranges(cube)
        h, w, c = cube.shape
        return pack_file(HnrFile(height=h, width=w, bands=c, dtype=cube.dtype, band_offset=offset, band_scale=scale,
                                 wavelengths=None, model_config=codec.config(cube.shape, bounds, cube.dtype),
                                 tensors=[], meta={"encoder": f"hinerc {__version__}"},
                                 payload=coder.encode(cube, bounds)))

    def decode(self, data):
        from hinercodec import api
        return api.decode(data)


# ---------------------------------------------------------------- CCSDS 123.0-B-2 (out of process)

class Ccsds123(BoundedCodec):
    """The shared runner, best of its two entropy coders (hybrid, sample-adaptive), 3 prediction bands."""

    name = "ccsds123"

    def unavailable(self):
        if not os.path.exists(CCSDS_RUNNER):
            return f"{CCSDS_RUNNER} is absent"
        try:
            import numba  # noqa: F401
        except ImportError:
            return "numba is not installed (the runner would take hours)"
        return None

    def refuses(self, cube, bounds):
        if cube.dtype.kind not in "iu":
            return "integer samples only"
        if np.unique(bounds).size > 1:
            return "one bound for every band only"
        return None

    def run_file(self, path: str, e: int) -> dict:
        """{bytes, bpppb, max_error, encode_s, decode_s, coder} of the better coder."""
        best = None
        for coder in ("hybrid", "sample"):
            r = subprocess.run([sys.executable, CCSDS_RUNNER, path, "--max-error", str(int(e)), "--coder", coder],
                               capture_output=True, text=True, timeout=3600)
            if r.returncode != 0:
                raise RuntimeError(f"ccsds123_run failed ({coder}): {r.stderr.strip()[-300:]}")
            out = json.loads(r.stdout.strip().splitlines()[-1])
            out["coder"] = coder
            if best is None or out["bytes"] < best["bytes"]:
                best = out
        return best


# ---------------------------------------------------------------- image codecs, one codestream a band

class JpegLS(BoundedCodec):
    """CharLS through imagecodecs; near-lossless through its NEAR parameter (= the bound)."""

    name = "jpeg-ls"

    def unavailable(self):
        return _imagecodecs("JPEGLS")

    def refuses(self, cube, bounds):
        return None if cube.dtype in (np.uint8, np.uint16) else "unsigned 8/16-bit samples only"

    def encode(self, cube, bounds):
        import imagecodecs
        return pack([pack_meta(cube.shape, cube.dtype)] +
                    [imagecodecs.jpegls_encode(b, level=int(e)) for b, e in zip(_bands(cube), bounds)])

    def decode(self, data):
        import imagecodecs
        parts = unpack(data)
        _, dtype, _ = unpack_meta(parts[0])
        return np.stack([imagecodecs.jpegls_decode(p) for p in parts[1:]], axis=-1).astype(dtype)


class JpegXL(BoundedCodec):
    """libjxl through imagecodecs, lossless, effort 7."""

    name = "jpeg-xl"
    lossless_only = True

    def unavailable(self):
        return _imagecodecs("JPEGXL")

    def refuses(self, cube, bounds):
        return None if cube.dtype in (np.uint8, np.uint16, np.float32) else "8/16-bit unsigned or float32 samples only"

    def encode(self, cube, bounds):
        import imagecodecs
        return pack([pack_meta(cube.shape, cube.dtype)] +
                    [imagecodecs.jpegxl_encode(b, lossless=True, effort=7, numthreads=1) for b in _bands(cube)])

    def decode(self, data):
        import imagecodecs
        parts = unpack(data)
        _, dtype, _ = unpack_meta(parts[0])
        return np.stack([imagecodecs.jpegxl_decode(p, numthreads=1) for p in parts[1:]], axis=-1).astype(dtype)


class Jpeg2000Reversible(BoundedCodec):
    """OpenJPEG through imagecodecs, reversible 5/3 wavelet, one j2k codestream a band."""

    name = "jpeg2000-rev"
    lossless_only = True

    def unavailable(self):
        return _imagecodecs("JPEG2K")

    def refuses(self, cube, bounds):
        return None if cube.dtype in (np.uint8, np.uint16) else "unsigned 8/16-bit samples only"

    def encode(self, cube, bounds):
        import imagecodecs
        return pack([pack_meta(cube.shape, cube.dtype)] +
                    [imagecodecs.jpeg2k_encode(b, reversible=True, codecformat="j2k") for b in _bands(cube)])

    def decode(self, data):
        import imagecodecs
        parts = unpack(data)
        _, dtype, _ = unpack_meta(parts[0])
        return np.stack([imagecodecs.jpeg2k_decode(p) for p in parts[1:]], axis=-1).astype(dtype)


class ZstdDelta(BoundedCodec):
    """Band-to-band differences (modulo 2^bits of the sample's unsigned view) + zstd level 19. Integer cubes
    with a bound: the quantised integers q = floor((x - min + E) / (2E + 1)) instead of x."""

    name = "zstd-delta"

    def unavailable(self):
        try:
            import zstandard  # noqa: F401
        except ImportError as exc:
            return f"zstandard is not installed ({exc})"
        return None

    def refuses(self, cube, bounds):
        if cube.dtype.kind == "f" and not _exact(bounds):
            return "float cubes: lossless only"
        return None

    def encode(self, cube, bounds):
        import zstandard
        h, w, c = cube.shape
        if cube.dtype.kind in "iu":
            e = np.asarray(bounds, np.int64)
            lo = int(cube.min())
            x = np.moveaxis(cube, 2, 0).astype(np.int64)
            q = np.where(e[:, None, None] > 0, (x - lo + e[:, None, None]) // (2 * e[:, None, None] + 1), x)
            d = np.diff(q, axis=0, prepend=0)
            width = np.int32 if np.abs(d).max() < 2 ** 31 else np.int64
            raw = d.astype(width).tobytes()
            head = (pack_meta(cube.shape, cube.dtype, (np.dtype(width).itemsize, 0)) + e.astype("<i8").tobytes()
                    + np.int64(lo).astype("<i8").tobytes())
        else:
            u = np.ascontiguousarray(np.moveaxis(cube, 2, 0)).view(np.uint32 if cube.dtype.itemsize == 4 else np.uint64)
            raw = np.diff(u, axis=0, prepend=np.zeros((1, h, w), u.dtype)).tobytes()
            head = pack_meta(cube.shape, cube.dtype, (0, 0))
        return pack([head, zstandard.ZstdCompressor(level=19).compress(raw)])

    def decode(self, data):
        import zstandard
        head, body = unpack(data)
        (h, w, c), dtype, (width, _) = unpack_meta(head, 2)
        raw = zstandard.ZstdDecompressor().decompress(body)
        if dtype.kind in "iu":
            lo = int(np.frombuffer(head[-8:], "<i8")[0])
            e = np.frombuffer(head[-8 * (c + 1):-8], "<i8")
            q = np.cumsum(np.frombuffer(raw, np.int32 if width == 4 else np.int64).reshape(c, h, w).astype(np.int64),
                          axis=0)
            x = np.where(e[:, None, None] > 0, lo + q * (2 * e[:, None, None] + 1), q)
            info = np.iinfo(dtype)
            return np.moveaxis(np.clip(x, info.min, info.max).astype(dtype), 0, 2)
        ut = np.uint32 if dtype.itemsize == 4 else np.uint64
        u = np.cumsum(np.frombuffer(raw, ut).reshape(c, h, w), axis=0, dtype=ut)
        return np.ascontiguousarray(np.moveaxis(u.view(dtype), 0, 2))


class Lerc(BoundedCodec):
    """LERC through imagecodecs, one blob a band with its own maxZError: the bound less 2^-10 of it (LERC's
    float32 arithmetic passes maxZError by up to about 3e-5 of it on float cubes; integer cubes: the bound
    itself, their values come back as integers; 0: lossless)."""

    name = "lerc"

    def unavailable(self):
        return _imagecodecs("LERC")

    def encode(self, cube, bounds):
        import imagecodecs
        return pack([pack_meta(cube.shape, cube.dtype)] +
                    [imagecodecs.lerc_encode(b, level=float(e) * (1 - 2 ** -10 * (cube.dtype.kind == "f")))
                     for b, e in zip(_bands(cube), bounds)])

    def decode(self, data):
        import imagecodecs
        parts = unpack(data)
        _, dtype, _ = unpack_meta(parts[0])
        return np.stack([imagecodecs.lerc_decode(p) for p in parts[1:]], axis=-1).astype(dtype)


class Sz3(BoundedCodec):
    """SZ3 through imagecodecs, absolute error bound (the smallest band bound) on the whole C x H x W cube;
    integer cubes as float32 (float64 when wider than 24 bits), rounded back (which keeps an integer bound)."""

    name = "sz3"

    def unavailable(self):
        return _imagecodecs("SZ3")

    def refuses(self, cube, bounds):
        return "no lossless mode" if _exact(bounds) else None

    def encode(self, cube, bounds):
        import imagecodecs
        ft = np.float64 if cube.dtype.itemsize == 8 or (cube.dtype.kind in "iu" and cube.dtype.itemsize > 2) \
            else np.float32
        x = np.ascontiguousarray(np.moveaxis(cube, 2, 0), dtype=ft)
        e = float(np.min(bounds))
        return pack([pack_meta(cube.shape, cube.dtype, (np.dtype(ft).itemsize,)),
                     imagecodecs.sz3_encode(x, mode="abs", abs=e)])

    def decode(self, data):
        import imagecodecs
        head, body = unpack(data)
        (h, w, c), dtype, (size,) = unpack_meta(head, 1)
        x = imagecodecs.sz3_decode(body, (c, h, w), np.float32 if size == 4 else np.float64)
        x = np.moveaxis(np.asarray(x).reshape(c, h, w), 0, 2)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            return np.clip(np.rint(x), info.min, info.max).astype(dtype)
        return np.ascontiguousarray(x.astype(dtype))


CODECS = {c.name: c for c in (Hinerc, Ccsds123, JpegLS, JpegXL, Jpeg2000Reversible, ZstdDelta, Lerc, Sz3)}


def make(name: str) -> BoundedCodec:
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; known: {', '.join(CODECS)}")
    return CODECS[name]()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t
