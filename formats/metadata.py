"""Sensor metadata and the nodata mask of a .hnr file: the ancillary chunks `smta` and `mask` (HNR.md).

`smta` holds one zstd-compressed JSON object: a `version` (1) and what the input file said about
its bands and its place on Earth (wavelengths in their own units, fwhm, bad band list, band names,
data units, scale/offset, nodata value, ENVI map info and coordinate system string, GeoTIFF CRS
(WKT) and affine transform, and the other ENVI header fields, TIFF tags or NetCDF attributes
verbatim). `mask` holds which pixels are valid (run lengths, zstd). Both are ancillary: a reader
that does not know them decodes the cube as before (nodata pixels then hold each band's mean of
the valid pixels). They sit just before HEND, so the tile index of a tiled file is unchanged.
"""
from __future__ import annotations

import math
import os
import struct
import zlib
from typing import BinaryIO, Optional, Union

import numpy as np

from hinercodec.entropy.huffman import read_varint, write_varint
from hinercodec.errors import CorruptFileError, UnsupportedFileError

from .container import Chunk, read_chunks, write_chunks
from .hnrfile import unzjson, unzstd, zjson, zstd_frame

META_TYPE = "smta"
MASK_TYPE = "mask"
META_VERSION = 1
_MASK_VERSION = 2  # written; 1 (run lengths, hinerc 0.5.0) is still read
# Per-band lists (subset by --bands): the keys of meta["bands"].
PER_BAND = ("wavelength", "fwhm", "bbl", "band_names", "gain", "offset")


def _jsonable(value: object) -> object:
    """NaN/Inf are not JSON: a non-finite float is stored as the string "nan", "inf" or "-inf"."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def nodata_value(meta: Optional[dict]) -> Optional[float]:
    """The nodata value of the metadata as a float (NaN for "nan"), or None."""
    if not meta or meta.get("nodata") is None:
        return None
    value = meta["nodata"]
    return float(value) if not isinstance(value, str) else float(value.replace("inf", "Infinity")
                                                                if value != "nan" else "nan")


def meta_chunk(meta: dict) -> Chunk:
    obj = dict(_jsonable(meta))
    obj["version"] = META_VERSION
    return Chunk(META_TYPE, zjson(obj))


def mask_chunk(valid: np.ndarray) -> Chunk:
    """The valid-pixel mask (H x W bool), version 2 (HNR.md "mask"): version byte, then a zstd frame
    of varints: per row, the change in its number of edges from the row above, then each edge (the
    columns 0..W where a run of valid pixels starts or ends) less the same edge of the row above
    (the edge before it in this row, or 0, where the row above has none), zigzag-coded. An
    orthorectified swath's border moves a little from row to row: about a third of version 1's size."""
    out = bytearray()
    prev: list[int] = []
    for row in np.asarray(valid, bool):
        edges = np.flatnonzero(np.diff(np.concatenate([[False], row, [False]]).astype(np.int8))).tolist()
        out += write_varint(_zigzag(len(edges) - len(prev)))
        for i, e in enumerate(edges):
            out += write_varint(_zigzag(e - (prev[i] if i < len(prev) else (edges[i - 1] if i else 0))))
        prev = edges
    return Chunk(MASK_TYPE, bytes([_MASK_VERSION]) + zstd_frame(bytes(out)))


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _mask_v2(raw: bytes, height: int, width: int) -> np.ndarray:
    """Inverse of mask_chunk's varints; CorruptFileError on anything that is not exactly H rows of
    an even number of strictly increasing edges in 0..W."""
    out = np.zeros((height, width), bool)
    pos, prev = 0, []
    for y in range(height):
        d, pos = read_varint(raw, pos, 2 * (width + 2))
        n = len(prev) + (d // 2 if d % 2 == 0 else -(d + 1) // 2)
        if n < 0 or n % 2 or n > width + 1:
            raise CorruptFileError(f"mask chunk: row {y} has {n} edges")
        edges: list[int] = []
        for i in range(n):
            z, pos = read_varint(raw, pos, 4 * (width + 2))
            e = (prev[i] if i < len(prev) else (edges[i - 1] if i else 0)) + (z // 2 if z % 2 == 0 else -(z + 1) // 2)
            if not 0 <= e <= width or (edges and e <= edges[-1]):
                raise CorruptFileError(f"mask chunk: row {y} has edges out of order or outside 0..{width}")
            edges.append(e)
        for a, b in zip(edges[0::2], edges[1::2]):
            out[y, a:b] = True
        prev = edges
    if pos != len(raw):
        raise CorruptFileError("mask chunk: bytes after the last row")
    return out


def _mask_from(data: bytes, height: int, width: int) -> np.ndarray:
    if not data:
        raise CorruptFileError("mask chunk is empty")
    if data[0] == 2:
        return _mask_v2(unzstd(data[1:], "mask", None), height, width)
    if data[0] != 1:
        raise UnsupportedFileError(f"needs a newer hinerc: mask chunk version {data[0]}")
    raw = unzstd(data[1:], "mask", None)
    if len(raw) % 4:
        raise CorruptFileError("mask chunk does not hold whole 32-bit run lengths")
    runs = np.frombuffer(raw, "<u4").astype(np.int64)
    if int(runs.sum()) != height * width:
        raise CorruptFileError(f"mask chunk covers {int(runs.sum())} pixels, the image has {height * width}")
    values = (np.arange(runs.size) % 2).astype(bool)
    return np.repeat(values, runs).reshape(height, width)


def add_chunks(data: bytes, chunks: list[Chunk]) -> bytes:
    """`data` (a whole .hnr file) with `chunks` inserted just before HEND (nothing else moves)."""
    if not chunks:
        return data
    existing = read_chunks(data)
    return write_chunks(existing[:-1] + list(chunks) + [existing[-1]])


def _walk(stream: BinaryIO, wanted: tuple[str, ...]) -> dict:
    """Type -> data of the wanted chunks of a file on a seekable stream, skipping the others unread."""
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    pos = 8
    found: dict = {}
    while pos + 12 <= size:
        stream.seek(pos)
        length, kind = struct.unpack("<I4s", stream.read(8))
        name = kind.decode("ascii", "replace")
        if name == "HEND":
            break
        if name in wanted:
            body = stream.read(length)
            crc = stream.read(4)
            if len(body) != length or len(crc) != 4 or struct.unpack("<I", crc)[0] != zlib.crc32(body, zlib.crc32(kind)):
                raise CorruptFileError(f"{name} chunk: CRC mismatch or truncated")
            if name in found:
                raise CorruptFileError(f"duplicate {name} chunk")
            found[name] = body
        pos += 12 + length
    return found


def read_extra(source: Union[bytes, BinaryIO], height: int, width: int) -> tuple[Optional[dict], Optional[np.ndarray]]:
    """(metadata dict or None, valid-pixel mask or None) of a .hnr file (bytes or a seekable stream)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        found: dict = {}
        for c in read_chunks(bytes(source)):
            if c.type in (META_TYPE, MASK_TYPE):
                if c.type in found:
                    raise CorruptFileError(f"duplicate {c.type} chunk")
                found[c.type] = c.data
    else:
        found = _walk(source, (META_TYPE, MASK_TYPE))
    meta = None
    if META_TYPE in found:
        meta = unzjson(found[META_TYPE], META_TYPE)
        version = meta.get("version")
        if not isinstance(version, int) or version < 1:
            raise CorruptFileError(f"smta chunk has no valid version ({version!r})")
        # A newer version may add keys; this reader keeps what it knows and shows the rest.
    valid = _mask_from(found[MASK_TYPE], height, width) if MASK_TYPE in found else None
    return meta, valid


# ---------------------------------------------------------------- what a decode writes


def for_output(meta: Optional[dict], bands: Optional[list] = None, window: Optional[tuple] = None) -> Optional[dict]:
    """The metadata of a decoded subset: the chosen bands' per-band values, the window's own map
    info and transform."""
    if not meta:
        return meta
    out = {k: v for k, v in meta.items() if k != "version"}
    if bands is not None and "bands" in out:
        out["bands"] = {k: [v[i] for i in bands] for k, v in out["bands"].items()}
    if bands is not None and isinstance(out.get("tags"), dict) and isinstance(out["tags"].get("bands"), list):
        per_band = out["tags"]["bands"]
        out["tags"] = {**out["tags"], "bands": [per_band[i] for i in bands if 0 <= i < len(per_band)]}
    if window is not None:
        y0, _, x0, _ = window
        if out.get("transform"):
            a, b, c, d, e, f = out["transform"][:6]
            out["transform"] = [a, b, c + a * x0 + b * y0, d, e, f + d * x0 + e * y0]
        if out.get("map_info"):
            from .envi import window_map_info

            out["map_info"] = window_map_info(out["map_info"], y0, x0)
    return out


def for_interp(meta: Optional[dict], nm: Optional[np.ndarray], file_nm: Optional[np.ndarray],
               window: Optional[tuple] = None) -> Optional[dict]:
    """The metadata of bands interpolated at wavelengths `nm` (nm, K) of a file whose coded bands
    are at `file_nm` (nm, C): the scene's own (units, nodata, georeferencing of the window, the
    other header fields) with per-band lists of K entries: wavelengths (in the file's wavelength
    units), fwhm, gain and offset interpolated linearly between the neighbouring coded bands, a band
    good (bbl 1) only when both neighbours are, names saying they were interpolated. Per-band GeoTIFF
    tags, which belong to coded bands, are left out."""
    out = for_output(meta, None, window)
    if not out:
        return out
    per_band = out.pop("bands", None) or {}
    if isinstance(out.get("tags"), dict):
        out["tags"] = {k: v for k, v in out["tags"].items() if k != "bands"}
    if nm is None:
        return out
    nm = np.asarray(nm, np.float64).reshape(-1)
    bands: dict = {"band_names": [f"{v:g} nm (interpolated)" for v in nm]}
    if file_nm is not None and len(file_nm) == _band_count(per_band, len(file_nm)):
        order = np.argsort(np.asarray(file_nm, np.float64))
        xp = np.asarray(file_nm, np.float64)[order]
        for key in ("wavelength", "fwhm", "gain", "offset", "bbl"):
            values = per_band.get(key)
            if values is None or len(values) != xp.size:
                continue
            try:
                fp = np.asarray(values, np.float64)[order]
            except (TypeError, ValueError):
                continue
            got = np.interp(nm, xp, fp)
            bands[key] = [int(v) for v in np.floor(got + 1e-9)] if key == "bbl" else [float(v) for v in got]
    if "wavelength" not in bands:
        bands["wavelength"] = [float(v) for v in nm]
        out["wavelength_units"] = "Nanometers"
    out["bands"] = bands
    return out


def _band_count(per_band: dict, default: int) -> int:
    lengths = {len(v) for v in per_band.values() if isinstance(v, list)}
    return lengths.pop() if len(lengths) == 1 else default
