"""The TENS payload of a .hnr file: a model's quantised parameters (spec: _spec_tensors.md).

Names are not stored: the model defines the order of its tensors. The payload is a leading coder
id, the tensor headers (shape, bits, dequantisation offsets and steps), then the coder's part:
for coder 0 a few canonical Huffman tables and ONE bitstream that holds every symbol, so that no
tensor pays for byte padding of its own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from hinercodec.errors import CorruptFileError, UnsupportedFileError

from . import huffman

CODER_HUFFMAN = 0
MAX_NDIM = 7  # the descriptor byte holds ndim in 3 bits
MAX_BITS = 16  # ... and bits - 1 in 4 bits
_DIM_LIMIT = 1 << 40
_PER_SLICE = 0x10


@dataclass
class QuantTensor:
    """One tensor as integer symbols plus the affine map back to floats, per tensor (G = 1) or per
    slice along axis 0 (G = shape[0])."""

    shape: tuple[int, ...]
    bits: int
    symbols: np.ndarray
    offset: np.ndarray
    step: np.ndarray
    name: str = ""

    def dequantize(self) -> np.ndarray:
        """float32 offset[g] + step[g] * symbol, each operation rounded to float32."""
        groups = np.asarray(self.offset).size
        lead = (groups,) + (1,) * (len(self.shape) - 1) if groups > 1 else (1,) * len(self.shape)
        offset = np.asarray(self.offset, np.float32).reshape(lead)
        step = np.asarray(self.step, np.float32).reshape(lead)
        return offset + step * np.asarray(self.symbols).astype(np.float32)


def _check(t: QuantTensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a tensor before packing (ValueError: a caller bug): (flat symbols, offset, step)."""
    shape = tuple(t.shape)
    if len(shape) > MAX_NDIM or any(int(d) < 1 for d in shape):
        raise ValueError(f"tensor {t.name!r}: shape {shape} needs <= {MAX_NDIM} dims, each >= 1")
    if not 1 <= t.bits <= MAX_BITS:
        raise ValueError(f"tensor {t.name!r}: bits must be in 1..{MAX_BITS}, got {t.bits}")
    symbols = np.asarray(t.symbols)
    if symbols.shape != shape or symbols.dtype.kind not in "iu":
        raise ValueError(f"tensor {t.name!r}: symbols must be integers of shape {shape}")
    if symbols.min() < 0 or symbols.max() >= 1 << t.bits:
        raise ValueError(f"tensor {t.name!r}: symbols outside 0..2**{t.bits}-1")
    offset, step = np.asarray(t.offset, np.float32), np.asarray(t.step, np.float32)
    groups = offset.size
    if offset.shape != (groups,) or step.shape != (groups,) or groups not in {1, shape[0] if shape else 1}:
        raise ValueError(f"tensor {t.name!r}: offset and step must both have length 1 or shape[0]")
    if not (np.isfinite(offset).all() and np.isfinite(step).all()):
        raise ValueError(f"tensor {t.name!r}: offset and step must be finite float32 values")
    return symbols.ravel().astype(np.int64), offset, step


def _header(t: QuantTensor, offset: np.ndarray, step: np.ndarray) -> bytes:
    per_slice = _PER_SLICE if offset.size > 1 else 0
    descriptor = (len(t.shape) << 5) | per_slice | (t.bits - 1)
    parts = [bytes([descriptor]), *(huffman.write_varint(int(d)) for d in t.shape)]
    return b"".join(parts + [offset.astype("<f4").tobytes(), step.astype("<f4").tobytes()])


def _coded_bits(hist: np.ndarray, lengths: np.ndarray) -> int:
    """Bits that symbols with histogram `hist` take under `lengths` (which must cover them)."""
    n = min(hist.size, lengths.size)
    return int(np.dot(hist[:n], lengths[:n].astype(np.int64)))


def _plan(hists: list[np.ndarray], bits: list[int]) -> tuple[list[np.ndarray], list[int]]:
    """Choose the code tables: (tables, table index per tensor).

    Start with one Huffman table shared by all tensors of a bit depth; then, greedily, move the
    tensor whose move shrinks the payload most to its own Huffman table or to the flat table of its
    bit depth (every symbol `bits` long: for near-uniform tensors, whose own table would cost more
    than it saves), until no move helps. Costs are exact: tables, symbols and table indices.
    """
    n = len(hists)
    hists = [np.pad(h, (0, (1 << b) - h.size)) for h, b in zip(hists, bits)]
    memo: dict = {}

    def table(key: tuple, members: list[int]) -> tuple[np.ndarray, int]:
        """(lengths, bits for the table and its members' symbols) of one table, memoised."""
        if key[0] == "flat":
            if key not in memo:
                lengths = np.full(1 << key[1], key[1], np.uint8)
                memo[key] = (lengths, 8 * len(huffman.write_lengths(lengths)))
            lengths, table_bits = memo[key]
            return lengths, table_bits + key[1] * sum(int(hists[i].sum()) for i in members)
        memo_key = key + tuple(members)
        if memo_key not in memo:
            hist = np.sum([hists[i] for i in members], axis=0)
            lengths = huffman.code_lengths(hist[: np.flatnonzero(hist)[-1] + 1])
            memo[memo_key] = (lengths, 8 * len(huffman.write_lengths(lengths)) + _coded_bits(hist, lengths))
        return memo[memo_key]

    def layout(keys: list[tuple]) -> tuple[int, dict]:
        groups: dict = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        cost = n * (len(groups) - 1).bit_length()
        tables = {}
        for key, members in groups.items():
            tables[key], group_cost = table(key, members)
            cost += group_cost
        return cost, tables

    keys = [("shared", b) for b in bits]
    cost, tables = layout(keys)
    while True:
        trials = [keys[:i] + [alt] + keys[i + 1:] for i in range(n) if keys[i][0] == "shared"
                  for alt in (("own", i), ("flat", bits[i]))]
        best = min(((*layout(trial), trial) for trial in trials), key=lambda t: t[0], default=None)
        if best is None or best[0] >= cost:
            break
        cost, tables, keys = best
    order = list(dict.fromkeys(keys))  # tables numbered in the order tensors first use them
    return [tables[key] for key in order], [order.index(key) for key in keys]


def pack_tensors(tensors: Sequence[QuantTensor]) -> bytes:
    """The TENS payload of `tensors` (coder 0: canonical Huffman)."""
    flat, headers = [], []
    for t in tensors:
        symbols, offset, step = _check(t)
        flat.append(symbols)
        headers.append(_header(t, offset, step))
    parts = [bytes([CODER_HUFFMAN]), huffman.write_varint(len(tensors)), *headers]
    if not tensors:
        return b"".join(parts) + huffman.write_varint(0)
    hists = [np.bincount(s) for s in flat]
    tables, choice = _plan(hists, [t.bits for t in tensors])
    parts.append(huffman.write_varint(len(tables)))
    parts += [huffman.write_lengths(lengths) for lengths in tables]
    index_bits = (len(tables) - 1).bit_length()
    codes = [np.asarray(choice, np.uint32)]
    nbits = [np.full(len(tensors), index_bits, np.uint8)]
    code_tables = [huffman.canonical_codes(lengths) for lengths in tables]
    for symbols, k in zip(flat, choice):
        codes.append(code_tables[k][symbols])
        nbits.append(tables[k][symbols])
    parts.append(huffman.pack_codes(np.concatenate(codes), np.concatenate(nbits)))
    return b"".join(parts)


def _read_f32(data: bytes, pos: int, count: int) -> tuple[np.ndarray, int]:
    end = pos + 4 * count
    if end > len(data):
        raise CorruptFileError("TENS payload is truncated")
    values = np.frombuffer(data, "<f4", count, pos).astype(np.float32)
    if not np.isfinite(values).all():
        raise CorruptFileError("TENS payload holds a non-finite offset or step")
    return values, end


def _read_header(data: bytes, pos: int) -> tuple[dict, int]:
    if pos >= len(data):
        raise CorruptFileError("TENS payload is truncated")
    descriptor = data[pos]
    pos += 1
    ndim, per_slice, bits = descriptor >> 5, bool(descriptor & _PER_SLICE), (descriptor & 0x0F) + 1
    shape = []
    for _ in range(ndim):
        dim, pos = huffman.read_varint(data, pos, _DIM_LIMIT)
        if dim == 0:
            raise CorruptFileError("TENS payload holds a tensor dimension of 0")
        shape.append(dim)
    if per_slice and (ndim == 0 or shape[0] == 1):
        raise CorruptFileError("TENS payload: per-slice groups on a tensor with one slice")
    groups = shape[0] if per_slice else 1
    offset, pos = _read_f32(data, pos, groups)
    step, pos = _read_f32(data, pos, groups)
    return dict(shape=tuple(shape), bits=bits, offset=offset, step=step), pos


def unpack_tensors(data: bytes) -> list[QuantTensor]:
    """Inverse of pack_tensors. CorruptFileError on any inconsistency; UnsupportedFileError on an
    entropy coder this version does not know."""
    data = bytes(data)
    if not data:
        raise CorruptFileError("TENS payload is empty")
    if data[0] != CODER_HUFFMAN:
        raise UnsupportedFileError(
            f"tensors use entropy coder {data[0]}, unknown to this hinerc; upgrade hinerc")
    count, pos = huffman.read_varint(data, 1, len(data))
    heads = []
    for _ in range(count):
        head, pos = _read_header(data, pos)
        heads.append(head)
    n_tables, pos = huffman.read_varint(data, pos, len(data))
    if (n_tables == 0) != (count == 0):
        raise CorruptFileError("TENS payload: wrong number of Huffman tables")
    tables = []
    for _ in range(n_tables):
        lengths, pos = huffman.read_lengths(data, pos)
        tables.append(lengths)
    stream = data[pos:]
    sizes = [math.prod(h["shape"]) for h in heads]
    index_bits = (n_tables - 1).bit_length() if n_tables else 0
    if sum(sizes) + count * index_bits > 8 * len(stream):  # every symbol takes at least one bit
        raise CorruptFileError("TENS payload is truncated")
    choice = _read_indices(stream, count, index_bits)
    if any(k >= n_tables for k in choice) or len(set(choice)) != n_tables:
        raise CorruptFileError("TENS payload: table index out of range or a table never used")
    bit = count * index_bits
    out = []
    i = 0
    while i < count:  # consecutive tensors with the same table decode as one run
        j = i
        while j < count and choice[j] == choice[i]:
            j += 1
        symbols, bit = huffman.decode_at(stream, bit, tables[choice[i]], sum(sizes[i:j]))
        for head, piece in zip(heads[i:j], np.split(symbols, np.cumsum(sizes[i:j])[:-1])):
            if piece.max() >= 1 << head["bits"]:
                raise CorruptFileError(f"TENS payload: symbol exceeds {head['bits']} bits")
            out.append(QuantTensor(symbols=piece.astype(np.uint16).reshape(head["shape"]), **head))
        i = j
    huffman.check_end(stream, bit)
    return out


def _read_indices(stream: bytes, count: int, width: int) -> list[int]:
    """The `count` table indices of `width` bits each at the start of the bitstream."""
    if width == 0:
        return [0] * count
    nbytes = (count * width + 7) // 8
    value = int.from_bytes(stream[:nbytes], "big") >> (8 * nbytes - count * width)
    mask = (1 << width) - 1
    return [(value >> (width * (count - 1 - i))) & mask for i in range(count)]
