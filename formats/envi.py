"""ENVI raster files: a text header (`.hdr`) beside a raw BSQ, BIL or BIP data file.

Our own code rather than a library: the format is a text header and a flat array, which numpy
memory-maps directly (a scene larger than memory is read window by window, touching only the
bytes of the window), and it needs no dependency. Every ENVI data type, byte order and header
offset is read; complex and 64-bit integer types are refused as a cube (hinerc codes real
8/16/32-bit integers and floats).

The header becomes the sensor metadata of formats/metadata.py: wavelengths (with their units),
fwhm, bad band list, band names, data units, gain/offset, nodata ("data ignore value"), map info,
coordinate system string, and every other field verbatim.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from hinercodec.errors import InputError

# ENVI data type codes (ENVI header reference) -> numpy type (byte order applied separately).
DATA_TYPES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 6: "c8", 9: "c16", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}
_TYPE_OF = {np.dtype(v).str[1:]: k for k, v in DATA_TYPES.items()}
# Interleave -> the axes of the stored array, named: BSQ (bands, lines, samples) ...
INTERLEAVES = {"bsq": "chw", "bil": "hcw", "bip": "hwc"}
DATA_SUFFIXES = ("", ".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".bin")
# Fields that describe the layout of the data file: rewritten for each output, never kept verbatim.
STRUCTURAL = ("samples", "lines", "bands", "header offset", "data type", "interleave", "byte order", "file type",
              "data file")
# Fields with one value per band (subset with --bands; parsed as lists).
PER_BAND = ("wavelength", "fwhm", "bbl", "band names", "data gain values", "data offset values")
_NUMERIC_PER_BAND = ("wavelength", "fwhm", "bbl", "data gain values", "data offset values")
# Per-band keys in the metadata dict (formats/metadata.py) for the ENVI ones.
META_KEY = {"wavelength": "wavelength", "fwhm": "fwhm", "bbl": "bbl", "band names": "band_names",
            "data gain values": "gain", "data offset values": "offset"}
_MICRO = ("micrometers", "micrometer", "microns", "micron", "um", "µm")


def is_header(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf").startswith(b"ENVI")


def header_for(path: str) -> Optional[Path]:
    """The ENVI header of `path`: the path itself when it is one, else `x.hdr` or `x.img.hdr` beside it."""
    p = Path(path)
    if p.suffix.lower() == ".hdr":
        return p
    for cand in (p.with_suffix(".hdr"), p.with_suffix(".HDR"), Path(str(p) + ".hdr")):
        if cand != p and cand.is_file():
            try:
                with open(cand, "rb") as f:
                    if is_header(f.read(16)):
                        return cand
            except OSError:
                continue
    return None


def data_file_for(header: Path, fields: dict) -> Path:
    """The data file of a header: its "data file" field, else the same name without .hdr or with a usual suffix."""
    named = fields.get("data file")
    if named:
        cand = Path(named) if os.path.isabs(named) else header.parent / named
        if cand.is_file():
            return cand
    stem = header.with_suffix("")
    for suffix in DATA_SUFFIXES + tuple(s.upper() for s in DATA_SUFFIXES if s):
        cand = Path(str(stem) + suffix)
        if cand.is_file() and cand != header:
            return cand
    raise InputError(f"{header}: the ENVI data file is missing (looked for {stem.name} with "
                     f"{', '.join(s or '(no suffix)' for s in DATA_SUFFIXES)})")


def parse_header(text: str, label: str) -> dict:
    """ENVI header text -> {lowercased field: raw value string ('{...}' lists without braces)}."""
    if not text.lstrip("\ufeff").startswith("ENVI"):
        raise InputError(f"{label} is not an ENVI header (it must start with 'ENVI')")
    fields: dict = {}
    body = text.lstrip("\ufeff")[4:]
    pos = 0
    pattern = re.compile(r"\s*([^=\n]+?)\s*=\s*")
    while pos < len(body):
        m = pattern.match(body, pos)
        if m is None:
            nl = body.find("\n", pos)
            line = body[pos:nl if nl >= 0 else len(body)].strip()
            if line and not line.startswith(";"):
                raise InputError(f"{label}: cannot read the header line {line[:60]!r}")
            pos = len(body) if nl < 0 else nl + 1
            continue
        key = " ".join(m.group(1).lower().split())
        pos = m.end()
        if body.startswith("{", pos):
            end = body.find("}", pos)
            if end < 0:
                raise InputError(f"{label}: field {key!r} opens '{{' and never closes it")
            value = body[pos + 1:end].strip()
            pos = end + 1
        else:
            nl = body.find("\n", pos)
            value = body[pos:nl if nl >= 0 else len(body)].strip()
            pos = len(body) if nl < 0 else nl + 1
        fields[key] = value
    return fields


def split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",")] if value.strip() else []


def _int(fields: dict, key: str, label: str, default: Optional[int] = None) -> int:
    raw = fields.get(key)
    if raw is None:
        if default is None:
            raise InputError(f"{label}: the ENVI header has no {key!r}")
        return default
    try:
        return int(raw.split()[0])
    except (ValueError, IndexError):
        raise InputError(f"{label}: ENVI {key!r} is {raw!r}, not a whole number") from None


class EnviFile:
    """An ENVI pair opened for reading: shape (H, W, C), dtype, metadata and window reads (memory-mapped)."""

    def __init__(self, path: str):
        header = header_for(path)
        if header is None:
            raise InputError(f"{path} has no ENVI header beside it (x.hdr)")
        label = str(header)
        try:
            text = header.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InputError(f"cannot read {header}: {exc.strerror or exc}") from None
        self.fields = fields = parse_header(text, label)
        self.header = header
        self.data_path = Path(path) if Path(path).suffix.lower() != ".hdr" else data_file_for(header, fields)
        h, w, c = (_int(fields, k, label) for k in ("lines", "samples", "bands"))
        if min(h, w, c) < 1:
            raise InputError(f"{label}: ENVI header declares an empty cube ({h} lines, {w} samples, {c} bands)")
        code = _int(fields, "data type", label)
        if code not in DATA_TYPES:
            raise InputError(f"{label}: unknown ENVI data type {code}")
        if code in (6, 9):
            raise InputError(f"{label}: ENVI data type {code} is complex; a cube must be real")
        order = _int(fields, "byte order", label, 0)
        if order not in (0, 1):
            raise InputError(f"{label}: ENVI byte order must be 0 or 1, not {order}")
        self.stored_dtype = np.dtype(("<" if order == 0 else ">") + DATA_TYPES[code])
        self.dtype = self.stored_dtype.newbyteorder("=")
        interleave = fields.get("interleave", "bsq").strip().lower()
        if interleave not in INTERLEAVES:
            raise InputError(f"{label}: unknown ENVI interleave {interleave!r} (bsq, bil or bip)")
        self.interleave = interleave
        self.offset = _int(fields, "header offset", label, 0)
        self.shape = (h, w, c)
        axes = INTERLEAVES[interleave]
        stored = tuple({"h": h, "w": w, "c": c}[a] for a in axes)
        need = self.offset + h * w * c * self.stored_dtype.itemsize
        try:
            size = os.path.getsize(self.data_path)
        except OSError as exc:
            raise InputError(f"cannot read {self.data_path}: {exc.strerror or exc}") from None
        if size < need:
            raise InputError(f"{self.data_path} is truncated: {size} bytes, the header needs {need} "
                             f"({h} x {w} x {c} {self.stored_dtype.name} after {self.offset} header bytes)")
        mapped = np.memmap(self.data_path, dtype=self.stored_dtype, mode="r", offset=self.offset, shape=stored)
        self._hwc = mapped.transpose(tuple(axes.index(a) for a in "hwc"))
        self.label = label

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return np.ascontiguousarray(self._hwc[y0:y1, x0:x1], dtype=self.dtype)

    def load(self) -> np.ndarray:
        return self.window(0, self.shape[0], 0, self.shape[1])

    def metadata(self) -> dict:
        return header_metadata(self.fields, self.shape[2], self.label, self.interleave)

    def wavelengths_nm(self) -> Optional[np.ndarray]:
        return wavelengths_nm(self.metadata())


def _numbers(values: list[str], key: str, label: str) -> list[float]:
    out = []
    for v in values:
        try:
            out.append(float(v))
        except ValueError:
            raise InputError(f"{label}: ENVI {key!r} holds {v!r}, not a number") from None
    return out


def header_metadata(fields: dict, bands: int, label: str, interleave: str = "bsq") -> dict:
    """The sensor metadata (formats/metadata.py keys) of an ENVI header."""
    meta: dict = {"source_format": "envi", "interleave": interleave}
    per_band: dict = {}
    for key in PER_BAND:
        if key not in fields:
            continue
        values = split_list(fields[key])
        if len(values) != bands:
            raise InputError(f"{label}: ENVI {key!r} has {len(values)} values for {bands} bands")
        per_band[META_KEY[key]] = _numbers(values, key, label) if key in _NUMERIC_PER_BAND else values
    if per_band:
        meta["bands"] = per_band
    if "wavelength units" in fields:
        meta["wavelength_units"] = fields["wavelength units"]
    if "data ignore value" in fields:
        value = _numbers([fields["data ignore value"]], "data ignore value", label)[0]
        meta["nodata"] = value
    if "map info" in fields:
        meta["map_info"] = fields["map info"]
    if "coordinate system string" in fields:
        meta["coordinate_system_string"] = fields["coordinate system string"]
    if "data units" in fields:
        meta["data_units"] = fields["data units"]
    if "reflectance scale factor" in fields:
        meta["scale"] = _numbers([fields["reflectance scale factor"]], "reflectance scale factor", label)[0]
    handled = set(STRUCTURAL) | set(PER_BAND) | {"wavelength units", "data ignore value", "map info",
                                                 "coordinate system string", "data units", "reflectance scale factor"}
    rest = {k: v for k, v in fields.items() if k not in handled}
    if rest:
        meta["envi"] = rest
    return meta


def wavelengths_nm(meta: dict) -> Optional[np.ndarray]:
    """The band centres in nm from the metadata (micrometres converted), or None."""
    wl = meta.get("bands", {}).get("wavelength")
    if wl is None:
        return None
    arr = np.asarray(wl, dtype=np.float64)
    units = str(meta.get("wavelength_units", "")).strip().lower()
    if units in _MICRO or (not units and arr.size and float(np.nanmax(arr)) < 30.0):
        arr = arr * 1000.0  # ENVI wavelengths without units in the 0.3-3 range are micrometres
    return arr


# ---------------------------------------------------------------- writing


def envi_pair(path: Path) -> tuple[Path, Path]:
    """(header, data file) of an output named x.hdr or x.img (or another data suffix)."""
    if path.suffix.lower() == ".hdr":
        return path, path.with_suffix(".img")
    return path.with_suffix(".hdr"), path


def _braced(values: list) -> str:
    return "{" + ", ".join(_text(v) for v in values) + "}"


def _text(v: object) -> str:
    return _number(float(v)) if isinstance(v, (float, int, np.floating, np.integer)) else str(v)


def header_text(shape: tuple, dtype: np.dtype, meta: Optional[dict], interleave: str,
                wavelengths: Optional[np.ndarray] = None) -> str:
    """The header of a little-endian ENVI file of `shape` (H, W, C) and `dtype` holding `meta`."""
    h, w, c = shape
    meta = meta or {}
    lines = ["ENVI", f"samples = {w}", f"lines = {h}", f"bands = {c}", "header offset = 0", "file type = ENVI Standard",
             f"data type = {_TYPE_OF[dtype.newbyteorder('<').str[1:]]}", f"interleave = {interleave}",
             "byte order = 0"]
    per_band = dict(meta.get("bands", {}))
    if "wavelength" not in per_band and wavelengths is not None:
        per_band["wavelength"] = [float(v) for v in wavelengths]
        lines.append("wavelength units = Nanometers")
    elif "wavelength_units" in meta:
        lines.append(f"wavelength units = {meta['wavelength_units']}")
    for key in PER_BAND:
        values = per_band.get(META_KEY[key])
        if values is not None and len(values) == c:
            lines.append(f"{key} = {_braced(values)}")
    if "nodata" in meta and meta["nodata"] is not None:
        value = float(meta["nodata"])
        lines.append(f"data ignore value = {'nan' if value != value else _number(value)}")
    for key, field in (("map_info", "map info"), ("coordinate_system_string", "coordinate system string")):
        if meta.get(key):
            lines.append(f"{field} = {{{meta[key]}}}")
    transform = meta.get("transform")
    if not meta.get("map_info") and transform and transform[1] == 0 and transform[3] == 0:
        # A GeoTIFF input: its transform as an ENVI map info (GDAL reads the tie point and pixel
        # sizes of any projection name), its CRS as the coordinate system string.
        a, _, c, _, e, f = (float(v) for v in transform[:6])
        lines.append(f"map info = {{Arbitrary, 1, 1, {_number(c)}, {_number(f)}, {_number(a)}, {_number(-e)}}}")
        if meta.get("crs_wkt") and not meta.get("coordinate_system_string"):
            lines.append(f"coordinate system string = {{{meta['crs_wkt']}}}")
    if meta.get("data_units"):
        lines.append(f"data units = {meta['data_units']}")
    if meta.get("scale") is not None and meta.get("source_format") == "envi":
        lines.append(f"reflectance scale factor = {_number(float(meta['scale']))}")
    for key, value in meta.get("envi", {}).items():
        lines.append(f"{key} = {{{value}}}" if ("," in value or "\n" in value or key == "description")
                     else f"{key} = {value}")
    return "\n".join(line for line in lines if line is not None) + "\n"


def _number(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def write_data(tmp: Path, data: np.ndarray, interleave: str, dtype: np.dtype) -> None:
    """The raw data file, little-endian, in `interleave` order, one band or row block at a time."""
    axes = INTERLEAVES[interleave]
    perm = tuple("hwc".index(a) for a in axes)
    le = dtype.newbyteorder("<")
    with open(tmp, "wb") as f:
        view = data.transpose(perm)
        for i in range(view.shape[0]):
            f.write(np.ascontiguousarray(view[i], dtype=le).tobytes())


def writable_dtype(dtype: np.dtype) -> np.dtype:
    """The ENVI type that holds `dtype` exactly (int8 -> int16, float16 -> float32)."""
    dt = np.dtype(dtype).newbyteorder("=")
    if dt == np.int8:
        return np.dtype(np.int16)
    if dt == np.float16:
        return np.dtype(np.float32)
    if dt.newbyteorder("<").str[1:] not in _TYPE_OF:
        raise InputError(f"ENVI has no data type for {dt}")
    return dt


def window_map_info(map_info: str, y0: int, x0: int) -> str:
    """ENVI map info of a window whose first pixel is (y0, x0) of the image: the reference pixel moved."""
    parts = split_list(map_info)
    if len(parts) < 7:
        return map_info
    try:
        ref_x, ref_y, east, north, dx, dy = (float(p) for p in parts[1:7])
    except ValueError:
        return map_info
    if any(p.lower().replace(" ", "").startswith("rotation=") for p in parts[7:]):
        parts[1], parts[2] = _number(ref_x - x0), _number(ref_y - y0)  # exact under any rotation
    else:
        parts[3], parts[4] = _number(east + x0 * dx), _number(north - y0 * dy)
    return ", ".join(parts)


def map_info_transform(map_info: str) -> Optional[list]:
    """The affine transform (a, b, c, d, e, f; GDAL's convention, pixel corners) of an ENVI map
    info without rotation: pixel (1, 1) of ENVI is the upper-left corner of the first pixel."""
    parts = split_list(map_info)
    if len(parts) < 7 or any(p.lower().replace(" ", "").startswith("rotation=") for p in parts[7:]):
        return None
    try:
        ref_x, ref_y, east, north, dx, dy = (float(p) for p in parts[1:7])
    except ValueError:
        return None
    return [dx, 0.0, east - (ref_x - 1) * dx, 0.0, -dy, north + (ref_y - 1) * dy]


Reader = Callable[[int, int, int, int], np.ndarray]
