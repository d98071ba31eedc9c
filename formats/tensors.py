"""The TENS payload of a .hnr file: a model's quantised parameters (spec: HNR.md, "TENS payload").

Names are not stored: the model defines the order of its tensors. The payload is a leading coder
id, the tensor headers (shape, bits, dequantisation offsets and steps), then the coder's part:
for coder 0 a few canonical Huffman tables and ONE bitstream that holds every symbol, so that no
tensor pays for byte padding of its own; for coder 1 a few rANS tables and ONE interleaved rANS
stream. pack_tensors writes both and keeps the smaller (Huffman on a tie), so adding rANS never
made a file bigger: it wins on peaked data (integer latents), where Huffman's 1 bit a symbol floor
wastes most of the bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from hinercodec.errors import CorruptFileError, UnsupportedFileError

from hinercodec.entropy import huffman, rans

CODER_HUFFMAN = 0
CODER_RANS = 1
CODER_STORED = 2  # 8-bit symbols as they are: for a payload that is already entropy-coded
MAX_NDIM = 7  # the descriptor byte holds ndim in 3 bits
MAX_BITS = 16  # ... and bits - 1 in 4 bits
_DIM_LIMIT = 1 << 40
_PER_SLICE = 0x10
_RANS_MAX_GAIN_PRECISION = 14


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


def _rans_plan(hists: list[np.ndarray], bits: list[int], precision: int) -> tuple[list[list[int]], list[int]]:
    """Choose the rANS tables: (the tensors of each table, table index per tensor).

    Start with one table per bit depth (the weights of a depth look alike), then, greedily, give
    the tensor whose move shrinks the payload most a table of its own (latent grids differ in
    scale), until no move helps. Costs: table bytes, ideal coded bits and table indices.
    ValueError when a table does not fit `precision`.
    """
    n = len(hists)
    memo: dict = {}

    def layout(keys: list[tuple]) -> tuple[float, dict]:
        groups: dict = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        cost = n * (len(groups) - 1).bit_length()
        for members in groups.values():
            if tuple(members) not in memo:
                memo[tuple(members)] = _rans_table([hists[i] for i in members], precision)[0]
            cost += memo[tuple(members)]
        return cost, groups

    keys = [("depth", b) for b in bits]
    cost = layout(keys)[0]
    while True:
        trials = [keys[:i] + [("own", i)] + keys[i + 1:] for i in range(n) if keys[i][0] == "depth"]
        best = min(((layout(trial)[0], trial) for trial in trials), key=lambda t: t[0], default=None)
        if best is None or best[0] >= cost:
            break
        cost, keys = best
    groups = layout(keys)[1]  # insertion order: tables numbered in the order tensors first use them
    order = list(groups)
    return list(groups.values()), [order.index(key) for key in keys]


def _rans_table(hists: list[np.ndarray], precision: int) -> tuple[float, rans.Table]:
    """(bits of table and symbols, table) of one rANS table for tensors with histograms `hists`."""
    hist = np.zeros(max(h.size for h in hists), np.int64)
    for h in hists:
        hist[: h.size] += h
    table = rans.build_table(hist, precision)
    return 8 * len(rans.write_table(table)) + rans.coded_bits(table, hist), table


def _rans_section(flat: list[np.ndarray], bits: list[int]) -> bytes | None:
    """Coder 1's part of the payload, or None when rANS cannot code these tensors (a table that
    fits no precision, or more symbols than the stream may hold).

    Tables are grouped at the lowest precision P >= 12 that fits; then P is raised while that
    shrinks the tables plus ideal code, up to _RANS_MAX_GAIN_PRECISION: large tensors gain up to
    0.4 % from 14 bits, while above 14 the coder's finite states lose more than that gains.
    """
    if not flat:
        return huffman.write_varint(0)
    hists = [np.bincount(s) for s in flat]
    for low in range(rans.DEFAULT_PRECISION, rans.MAX_PRECISION + 1):
        try:
            members, choice = _rans_plan(hists, bits, low)
            break
        except ValueError:
            continue
    else:
        return None
    best = None
    for precision in range(low, max(low, _RANS_MAX_GAIN_PRECISION) + 1):
        costs, tables = zip(*(_rans_table([hists[i] for i in m], precision) for m in members))
        if best is None or sum(costs) < best[0]:
            best = (sum(costs), tables)
    tables = list(best[1])
    which = np.repeat(np.asarray(choice, np.int64), [s.size for s in flat])
    try:
        stream = rans.encode(np.concatenate(flat), tables, which)
    except ValueError:
        return None
    index_bits = (len(tables) - 1).bit_length()
    indices = huffman.pack_codes(np.asarray(choice, np.uint32), np.full(len(choice), index_bits, np.uint8))
    return b"".join([huffman.write_varint(len(tables)), *(rans.write_table(t) for t in tables), indices, stream])


def pack_tensors(tensors: Sequence[QuantTensor], coder: int | None = None) -> bytes:
    """The TENS payload of `tensors`: with coder None, the smallest of coder 0 (canonical Huffman),
    coder 1 (rANS) and, when every tensor is 8-bit, coder 2 (stored: a payload that is already
    entropy-coded, such as the transform model's, gains nothing from another coder), earlier
    coders on a tie; else the coder asked for (ValueError when it cannot code these tensors)."""
    if coder not in (None, CODER_HUFFMAN, CODER_RANS, CODER_STORED):
        raise ValueError(f"unknown coder {coder}")
    flat, headers = [], []
    for t in tensors:
        symbols, offset, step = _check(t)
        flat.append(symbols)
        headers.append(_header(t, offset, step))
    head = [huffman.write_varint(len(tensors)), *headers]
    bits = [t.bits for t in tensors]
    stored_ok = bool(tensors) and all(b == 8 for b in bits)
    if coder == CODER_STORED:
        if not stored_ok:
            raise ValueError("the stored coder holds 8-bit tensors only")
        return b"".join([bytes([CODER_STORED]), *head, *(f.astype(np.uint8).tobytes() for f in flat)])
    huff = b"" if coder == CODER_RANS else b"".join([bytes([CODER_HUFFMAN]), *head, _huffman_section(flat, bits)])
    if coder == CODER_HUFFMAN or (coder is None and not tensors):
        return huff
    section = _rans_section(flat, bits)
    if coder == CODER_RANS and section is None:
        raise ValueError("rANS cannot code these tensors (a table or the symbol count does not fit)")
    best = huff
    if section is not None and (coder == CODER_RANS or 1 + len(section) + sum(map(len, head)) < len(huff)):
        best = b"".join([bytes([CODER_RANS]), *head, section])
    if coder is None and stored_ok and 1 + sum(map(len, head)) + sum(f.size for f in flat) < len(best):
        return pack_tensors(tensors, CODER_STORED)
    return best


def _huffman_section(flat: list[np.ndarray], bits: list[int]) -> bytes:
    """Coder 0's part of the payload: tables, then one bitstream of table indices and symbols."""
    if not flat:
        return huffman.write_varint(0)
    hists = [np.bincount(s) for s in flat]
    tables, choice = _plan(hists, bits)
    parts = [huffman.write_varint(len(tables))]
    parts += [huffman.write_lengths(lengths) for lengths in tables]
    index_bits = (len(tables) - 1).bit_length()
    codes = [np.asarray(choice, np.uint32)]
    nbits = [np.full(len(flat), index_bits, np.uint8)]
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
    if data[0] not in (CODER_HUFFMAN, CODER_RANS, CODER_STORED):
        raise UnsupportedFileError(
            f"tensors use entropy coder {data[0]}, unknown to this hinerc; upgrade hinerc")
    count, pos = huffman.read_varint(data, 1, len(data))
    heads = []
    for _ in range(count):
        head, pos = _read_header(data, pos)
        heads.append(head)
    if data[0] == CODER_RANS:
        return _unpack_rans(data, pos, heads)
    if data[0] == CODER_STORED:
        return _unpack_stored(data, pos, heads)
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
        out += _tensors(heads[i:j], symbols)
        i = j
    huffman.check_end(stream, bit)
    return out


def _tensors(heads: list[dict], symbols: np.ndarray) -> list[QuantTensor]:
    """The tensors of `heads` from their concatenated symbols (CorruptFileError: too wide)."""
    out = []
    sizes = [math.prod(h["shape"]) for h in heads]
    for head, piece in zip(heads, np.split(symbols, np.cumsum(sizes)[:-1])):
        if piece.max() >= 1 << head["bits"]:
            raise CorruptFileError(f"TENS payload: symbol exceeds {head['bits']} bits")
        out.append(QuantTensor(symbols=piece.astype(np.uint16).reshape(head["shape"]), **head))
    return out


def _unpack_rans(data: bytes, pos: int, heads: list[dict]) -> list[QuantTensor]:
    """Coder 1's part: tables, packed table indices, one rANS stream to the end."""
    count = len(heads)
    n_tables, pos = huffman.read_varint(data, pos, len(data))
    if (n_tables == 0) != (count == 0):
        raise CorruptFileError("TENS payload: wrong number of rANS tables")
    tables = []
    for _ in range(n_tables):
        table, pos = rans.read_table(data, pos)
        tables.append(table)
    index_bits = (n_tables - 1).bit_length() if n_tables else 0
    end = pos + (count * index_bits + 7) // 8
    if end > len(data):
        raise CorruptFileError("TENS payload is truncated")
    choice = _read_indices(data[pos:end], count, index_bits)
    if (count * index_bits) % 8 and data[end - 1] & ((1 << (8 - count * index_bits % 8)) - 1):
        raise CorruptFileError("TENS payload: nonzero padding bits after the table indices")
    if any(k >= n_tables for k in choice) or len(set(choice)) != n_tables:
        raise CorruptFileError("TENS payload: table index out of range or a table never used")
    stream = data[end:]
    if not heads:
        if stream:
            raise CorruptFileError(f"{len(stream)} bytes of trailing data after an empty TENS payload")
        return []
    sizes = [math.prod(h["shape"]) for h in heads]
    if sum(sizes) > rans.MAX_SYMBOLS_PER_BYTE * len(stream):
        raise CorruptFileError("TENS payload is truncated (too short a stream for its symbols)")
    which = np.repeat(np.asarray(choice, np.int64), sizes)
    return _tensors(heads, rans.decode(stream, tables, sum(sizes), which))


def _unpack_stored(data: bytes, pos: int, heads: list[dict]) -> list[QuantTensor]:
    """Coder 2's part: every symbol one byte, tensor after tensor, to the end of the payload."""
    if not heads or any(h["bits"] != 8 for h in heads):
        raise CorruptFileError("TENS payload: the stored coder holds at least one tensor, all 8-bit")
    sizes = [math.prod(h["shape"]) for h in heads]
    if pos + sum(sizes) != len(data):
        raise CorruptFileError(f"TENS payload: stored tensors need {sum(sizes)} bytes, {len(data) - pos} remain")
    return _tensors(heads, np.frombuffer(data, np.uint8, sum(sizes), pos).astype(np.int64))


def _read_indices(stream: bytes, count: int, width: int) -> list[int]:
    """The `count` table indices of `width` bits each at the start of the bitstream."""
    if width == 0:
        return [0] * count
    nbytes = (count * width + 7) // 8
    value = int.from_bytes(stream[:nbytes], "big") >> (8 * nbytes - count * width)
    mask = (1 << width) - 1
    return [(value >> (width * (count - 1 - i))) & mask for i in range(count)]
