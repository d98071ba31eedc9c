"""What the chunks of a .hnr file mean: header, band normalisation, wavelengths, model, tensors.

pack/unpack turn an HnrFile into bytes and back (byte layout in HNR.md). unpack raises only
CorruptFileError (damaged or inconsistent file) or UnsupportedFileError (a newer format), so the
CLI can tell the user which of the two they hold.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import zstandard

from hinercodec.errors import CorruptFileError, InputError, UnsupportedFileError

from .container import Chunk, is_critical, read_chunks, write_chunks
from .tensors import pack_tensors, unpack_tensors

FORMAT_VERSION = (1, 0)  # one model for the whole cube, its weights in TENS
PAYLOAD_VERSION = (1, 1)  # the same with a codec's own bitstream in CODE (hinerc 0.5)
NEWEST_MAJOR = 2  # 2.x: tiled files (formats/tiled.py); this reader knows majors 1 and 2
# Critical chunks of format 1.x in their required order (ancillary chunks may sit in between):
# TENS (network weights, or a 0.3-0.4 payload as one stored byte tensor) or CODE (1.1: a payload).
CRITICAL_ORDER = ("HHDR", "BNDS", "WAVE", "MODL", "TENS", "HEND")
PAYLOAD_ORDER = ("HHDR", "BNDS", "WAVE", "MODL", "CODE", "HEND")

# Sample type codes of HHDR, keyed by (numpy kind, item size) so that byte order does not matter.
_DTYPE_CODES = {("u", 1): 1, ("i", 1): 2, ("u", 2): 3, ("i", 2): 4, ("u", 4): 5, ("i", 4): 6,
                ("f", 2): 7, ("f", 4): 8, ("f", 8): 9}
_CODE_DTYPES = {code: np.dtype(f"{kind}{size}") for (kind, size), code in _DTYPE_CODES.items()}
SUPPORTED_DTYPES = tuple(_CODE_DTYPES.values())

HHDR_LAYOUT = struct.Struct("<BBBBIII")  # major, minor, dtype code, reserved, H, W, C
_EVEN = struct.Struct("<dd")  # WAVE kind 1: first, last
_WAVE_NONE, _WAVE_EVEN, _WAVE_TABLE = 0, 1, 2
_ZSTD_LEVEL = 19
_MAX_JSON = 16 << 20  # MODL/meta are a few hundred bytes; refuse frames claiming more than 16 MiB
_U32 = 0xFFFFFFFF


@dataclass(eq=False)  # arrays inside: field-wise == would be ambiguous
class HnrFile:
    """The decoded content of a .hnr file (everything the decoder needs, nothing it recomputes)."""

    height: int
    width: int
    bands: int
    dtype: np.dtype  # of the original cube, restored on decode
    band_offset: np.ndarray  # float32 [C]: value = offset + scale * y, y in [0, 1] the network output
    band_scale: np.ndarray  # float32 [C]
    wavelengths: Optional[np.ndarray]  # float64 nm [C], or None when the input had none
    model_config: dict
    tensors: list  # list[formats.tensors.QuantTensor]; empty when `payload` is set
    meta: dict = field(default_factory=dict)
    version: tuple[int, int] = FORMAT_VERSION  # of the file read; pack writes FORMAT_VERSION or PAYLOAD_VERSION
    chunk_sizes: dict[str, int] = field(default_factory=dict)  # unpack: type -> bytes incl. 12 of framing
    payload: Optional[bytes] = None  # a codec's own bitstream (CODE chunk, format 1.1) instead of tensors

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.bands)

    def band_positions(self) -> np.ndarray:
        return band_positions(self.wavelengths, self.bands)


def band_positions(wavelengths: Optional[np.ndarray], bands: int) -> np.ndarray:
    """Normalised band positions t_i in [0, 1] (the network's spectral coordinate), float64:
    from the wavelengths when the file has them, else evenly spaced."""
    if wavelengths is None:
        return np.arange(bands) / max(bands - 1, 1)
    return positions(np.asarray(wavelengths, dtype=np.float64))


BNDS_BITS = 8  # significant bits an encoder keeps of each BNDS offset and scale


def band_normalisation(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BNDS (offset, scale), f32, for bands whose values lie in [lo, hi].

    Why not lo and hi - lo exactly: the chunk is a zstd frame, and values with BNDS_BITS
    significant bits (the low bytes of each f32 zero) take about half the bytes (Samson's 156
    bands: 809 -> 425 bytes), a few percent of a file at 0.1 bpppb. So the offset is lo rounded
    down and the scale hi - offset rounded up to BNDS_BITS bits: the normalised values still span
    [0, 1] (within 2 ** -BNDS_BITS of each end), which costs nothing measurable. A constant band
    keeps its value exactly (scale 0). Falls back to the exact f32 values where rounding would not
    be finite in f32."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)

    def rounded(v: np.ndarray, up: bool) -> np.ndarray:
        out = v.copy()
        nz = (v != 0) & np.isfinite(v)
        e = np.floor(np.log2(np.abs(v[nz])))
        q = np.exp2(e - BNDS_BITS)
        out[nz] = (np.ceil(v[nz] / q) if up else np.floor(v[nz] / q)) * q
        return out

    exact_o = lo.astype(np.float32)
    exact_s = (hi - exact_o.astype(np.float64)).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        offset = rounded(lo, up=False).astype(np.float32)
        scale = rounded(hi - offset.astype(np.float64), up=True).astype(np.float32)
    constant = hi <= lo
    bad = ~(np.isfinite(offset) & np.isfinite(scale)) | constant
    offset = np.where(bad, exact_o, offset).astype(np.float32)
    scale = np.where(bad, exact_s, scale).astype(np.float32)
    return offset, np.where(constant, np.float32(0.0), scale).astype(np.float32)


def dtype_code(dtype: Any) -> int:
    """HHDR code of a cube's sample type; InputError for types the format cannot restore."""
    dt = np.dtype(dtype)
    code = _DTYPE_CODES.get((dt.kind, dt.itemsize))
    if code is None:
        names = ", ".join(d.name for d in SUPPORTED_DTYPES)
        raise InputError(f"sample type {dt} is not supported (supported: {names})")
    return code


def even_grid(first: float, last: float, count: int) -> np.ndarray:
    """WAVE kind 1 wavelengths: first + i * ((last - first) / (count - 1)), the last exactly `last`.

    Writer and reader both use this, so kind 1 is chosen only when the reader reproduces the input."""
    grid = first + np.arange(count) * ((last - first) / (count - 1))
    grid[-1] = last
    return grid


def positions(nm: np.ndarray) -> np.ndarray:
    """t_i = (nm_i - nm_0) / (nm_{C-1} - nm_0), t = 0 for a single band (float64)."""
    if nm.size == 1:
        return np.zeros(1)
    with np.errstate(all="ignore"):
        return (nm - nm[0]) / (nm[-1] - nm[0])


def _valid_nm(nm: np.ndarray) -> bool:
    """Finite, and the first and last bands at the two ends of the range, so that every t_i is in
    [0, 1]. Not monotonic: AVIRIS's four spectrometers overlap (686.9 nm follows 696.5 nm)."""
    with np.errstate(all="ignore"):
        t = positions(nm)
        return bool(np.all(np.isfinite(nm)) and np.all(np.isfinite(t)) and np.all((t >= 0) & (t <= 1)))


# ---------------------------------------------------------------- zstd and JSON payloads

def zstd_frame(raw: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(raw)


def _unzstd(frame: bytes, what: str, size: Optional[int] = None) -> bytes:
    """Exactly one zstd frame with its content size declared (checked before any allocation)."""
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError:
        raise CorruptFileError(f"{what} chunk does not hold a zstd frame") from None
    if declared < 0:
        raise CorruptFileError(f"{what} chunk's zstd frame does not declare its size")
    if size is not None and declared != size:
        raise CorruptFileError(f"{what} chunk holds {declared} bytes, expected {size}")
    if size is None and declared > _MAX_JSON:
        raise CorruptFileError(f"{what} chunk claims {declared} bytes, more than any hinerc writes")
    stream = zstandard.ZstdDecompressor().decompressobj()
    try:
        raw = stream.decompress(frame)
    except zstandard.ZstdError:
        raise CorruptFileError(f"{what} chunk holds invalid zstd data") from None
    if not stream.eof or stream.unused_data or len(raw) != declared:
        raise CorruptFileError(f"{what} chunk's zstd frame is incomplete or followed by extra bytes")
    return raw


def unzstd(frame: bytes, what: str, size: Optional[int] = None) -> bytes:
    """Public name of _unzstd (formats/metadata.py reads the mask chunk with it)."""
    return _unzstd(frame, what, size)


def zjson(obj: dict) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return zstd_frame(text.encode("utf-8"))


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def unzjson(frame: bytes, what: str) -> dict:
    try:
        obj = json.loads(_unzstd(frame, what).decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CorruptFileError(f"{what} chunk does not hold valid UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{what} chunk holds JSON that is not an object")
    return obj


# ---------------------------------------------------------------- writing

def bands_array(values: Any, bands: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32)
    if arr.shape != (bands,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be {bands} finite float32 values")
    return arr


def wave_payload(wavelengths: Optional[np.ndarray], bands: int) -> bytes:
    if wavelengths is None:
        return bytes([_WAVE_NONE])
    nm = np.asarray(wavelengths, dtype=np.float64).reshape(-1)  # MATLAB gives 1 x C row vectors
    if nm.size != bands:
        raise InputError(f"{nm.size} wavelengths given for a cube of {bands} bands")
    if not _valid_nm(nm):
        raise InputError("wavelengths must be finite, with the first and last band at the two ends of the range")
    if bands >= 2:
        with np.errstate(over="ignore"):
            even = np.array_equal(even_grid(nm[0], nm[-1], bands).astype(np.float32), nm.astype(np.float32))
        if even:
            return bytes([_WAVE_EVEN]) + _EVEN.pack(nm[0], nm[-1])
    return bytes([_WAVE_TABLE]) + zstd_frame(nm.astype("<f8").tobytes())


def pack(f: HnrFile) -> bytes:
    """The complete .hnr file (format FORMAT_VERSION) for `f`; deterministic byte for byte."""
    for name in ("height", "width", "bands"):
        value = getattr(f, name)
        if not 1 <= value <= _U32:
            raise ValueError(f"{name} must be in 1..{_U32}, got {value}")
    offset = bands_array(f.band_offset, f.bands, "band_offset")
    scale = bands_array(f.band_scale, f.bands, "band_scale")
    if f.payload is not None and f.tensors:
        raise ValueError("a file holds a payload or tensors, not both")
    version = PAYLOAD_VERSION if f.payload is not None else FORMAT_VERSION
    header = HHDR_LAYOUT.pack(*version, dtype_code(f.dtype), 0, f.height, f.width, f.bands)
    chunks = [Chunk("HHDR", header)]
    if f.meta:
        chunks.append(Chunk("meta", zjson(f.meta)))
    chunks += [
        Chunk("BNDS", zstd_frame(offset.astype("<f4").tobytes() + scale.astype("<f4").tobytes())),
        Chunk("WAVE", wave_payload(f.wavelengths, f.bands)),
        Chunk("MODL", zjson(f.model_config)),
        Chunk("CODE", bytes(f.payload)) if f.payload is not None else Chunk("TENS", pack_tensors(f.tensors)),
        Chunk("HEND", b""),
    ]
    return write_chunks(chunks)


# ---------------------------------------------------------------- reading

def read_header(data: bytes) -> tuple[tuple[int, int], np.dtype, int, int, int]:
    """Version first: only the two version bytes of HHDR are fixed across major versions."""
    if len(data) < 2:
        raise CorruptFileError(f"HHDR chunk is {len(data)} bytes, expected {HHDR_LAYOUT.size}")
    major, minor = data[0], data[1]
    if major > NEWEST_MAJOR:
        raise UnsupportedFileError(f"format version {major}.{minor} is newer than this hinerc reads "
                                   f"(1.x and {NEWEST_MAJOR}.x); upgrade hinerc")
    if major < FORMAT_VERSION[0]:
        raise UnsupportedFileError(f"format version {major}.{minor} is not one this hinerc reads "
                                   f"(1.x and {NEWEST_MAJOR}.x)")
    # A newer minor may append optional fields to HHDR; this reader ignores them (every major so far
    # has minor 0 and the same 16-byte HHDR).
    if len(data) < HHDR_LAYOUT.size or (len(data) > HHDR_LAYOUT.size and minor <= 0):
        raise CorruptFileError(f"HHDR chunk is {len(data)} bytes, expected {HHDR_LAYOUT.size}")
    _, _, code, _, height, width, bands = HHDR_LAYOUT.unpack_from(data)
    if code not in _CODE_DTYPES:
        raise UnsupportedFileError(f"needs a newer hinerc: unknown sample type code {code}")
    if min(height, width, bands) < 1:
        raise CorruptFileError(f"HHDR declares an empty cube ({height} x {width} x {bands})")
    return (major, minor), _CODE_DTYPES[code], height, width, bands


def _check_order(types: list[str], minor: int) -> None:
    """Critical chunks: known, each once, in CRITICAL_ORDER (or PAYLOAD_ORDER from format 1.1)."""
    known = set(CRITICAL_ORDER) | (set(PAYLOAD_ORDER) if minor >= PAYLOAD_VERSION[1] else set())
    for t in types:
        if t not in known:
            raise UnsupportedFileError(f"needs a newer hinerc: unknown critical chunk '{t}'")
    order = PAYLOAD_ORDER if "CODE" in types else CRITICAL_ORDER
    if "CODE" in types and "TENS" in types:
        raise CorruptFileError("a file holds TENS or CODE, not both")
    for t in order:
        if types.count(t) != 1:
            raise CorruptFileError(f"{'missing' if t not in types else 'duplicate'} {t} chunk")
    if tuple(types) != order:
        raise CorruptFileError(f"chunks out of order: {' '.join(types)} (expected {' '.join(order)})")


def read_bands(frame: bytes, bands: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(_unzstd(frame, "BNDS", 8 * bands), dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(raw)):
        raise CorruptFileError("BNDS chunk holds non-finite band offsets or scales")
    return raw[:bands], raw[bands:]


def read_wave(data: bytes, bands: int) -> Optional[np.ndarray]:
    kind = data[0] if data else None
    if kind == _WAVE_NONE and len(data) == 1:
        return None
    if kind == _WAVE_EVEN and len(data) == 1 + _EVEN.size:
        first, last = _EVEN.unpack_from(data, 1)
        if bands < 2 or not _valid_nm(np.array([first, last])):
            raise CorruptFileError(f"WAVE chunk: invalid even spacing {first}..{last} nm for {bands} bands")
        return even_grid(first, last, bands)
    if kind == _WAVE_TABLE:
        nm = np.frombuffer(_unzstd(data[1:], "WAVE", 8 * bands), dtype="<f8").astype(np.float64)
        if not _valid_nm(nm):
            raise CorruptFileError("WAVE chunk: wavelengths are not finite or the end bands are not the extremes")
        return nm
    if kind is not None and kind > _WAVE_TABLE:
        raise UnsupportedFileError(f"needs a newer hinerc: unknown WAVE kind {kind}")
    raise CorruptFileError(f"WAVE chunk of {len(data)} bytes does not match its kind")


def unpack(data: bytes) -> HnrFile:
    """Parse and validate a whole .hnr file; CorruptFileError or UnsupportedFileError otherwise."""
    chunks = read_chunks(data)
    if chunks[0].type != "HHDR":
        raise CorruptFileError(f"first chunk is '{chunks[0].type}', not HHDR")
    version, dtype, height, width, bands = read_header(chunks[0].data)
    if version[0] != FORMAT_VERSION[0]:
        raise UnsupportedFileError(f"format {version[0]}.{version[1]} is a tiled file: read it with formats.tiled")
    _check_order([c.type for c in chunks if is_critical(c.type)], version[1])
    found = {c.type: c.data for c in chunks if is_critical(c.type)}
    metas = [c.data for c in chunks if c.type == "meta"]
    if len(metas) > 1:
        raise CorruptFileError("duplicate meta chunk")
    sizes: dict[str, int] = {}
    for c in chunks:
        sizes[c.type] = sizes.get(c.type, 0) + len(c.data) + 12
    offset, scale = read_bands(found["BNDS"], bands)
    return HnrFile(
        height=height, width=width, bands=bands, dtype=dtype, band_offset=offset, band_scale=scale,
        wavelengths=read_wave(found["WAVE"], bands),
        model_config=unzjson(found["MODL"], "MODL"),
        tensors=unpack_tensors(found["TENS"]) if "TENS" in found else [],
        payload=found.get("CODE"),
        meta=unzjson(metas[0], "meta") if metas else {},
        version=version, chunk_sizes=sizes,
    )
