"""Static-model rANS (range asymmetric numeral systems), interleaved over lanes, numpy only.

Why: Huffman spends at least one bit per symbol, so it wastes most of the bits of peaked data
(integer latents that are mostly 0 or +-1, entropy 0.2..2 bits); rANS codes within a fraction of
a percent of the entropy of its frequency table.

Coder: every table's frequencies sum to M = 2**P (P = precision, 1..16, one per stream). States
are 32-bit integers in [L, 2**32), L = 2**16, renormalised by 16-bit words: with P <= 16 a single
word always restores a state, so each step is one vectorised operation per lane, and states of at
least 2**16 keep the cost of the finite state negligible at the usual P = 12 (the encoder picks P).
Encoding symbol s (frequency f, cumulative c) in state x: if x >= f * 2**(32-P), emit the low 16
bits of x and shift x right by 16; then x = (x // f) * M + x % f + c. Decoding inverts it:
slot = x % M, s = the symbol with c <= slot < c + f, x = f * (x // M) + slot - c, and if x < L
then x = x * 2**16 + the next word.

Lanes: K = 2**k independent coders; symbol i belongs to lane i % K, so the K symbols of a step are
coded by one numpy operation across lanes and the Python loop runs ceil(N / K) times. Every lane
starts (encoder) and must end (decoder) in state L: a free integrity check.

Stream: u8 k, the K final encoder states as u32 (lane 0 first), then the 16-bit words as u16, in
the order the decoder reads them (step by step, lanes in increasing order); little-endian.

Tables (write_table): frequencies are not stored exactly but as level codes on a logarithmic
scale with 2**r levels per octave (a tiny float format), delta-coded between neighbouring symbols
like the Huffman tables; the most probable symbol takes whatever the others leave of M. This costs
about as little as a Huffman table for broad 8-bit weights and a few bytes for peaked latents,
while rounding the other frequencies to levels costs a fraction of a percent of the coded size.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional, Sequence

import numpy as np

from hinercodec.errors import CorruptFileError

from . import huffman

STATE_LOW = 1 << 16  # L: states live in [L, 2**32)
WORD_BITS = 16
MAX_PRECISION = 16  # P <= 16 keeps one renormalisation word per step
DEFAULT_PRECISION = 12
MAX_ALPHABET = 1 << 16
MAX_LANES_LOG2 = 8
MAX_STEPS = 8192  # lanes grow until the decoder's loop runs at most this many steps (up to 256 lanes)
MAX_RESOLUTION = 3  # r: levels per octave = 2**r
MAX_ORDER = 3  # g: order of the Exp-Golomb-shaped code of the level changes
# Bomb guard: a stream of n bytes holds at most n * 4096 symbols (0.002 bits a symbol); only
# constant data gets near it, and the encoder's lane count keeps that under about 520.
MAX_SYMBOLS_PER_BYTE = 4096


def _level_cap(r: int) -> int:
    """Largest level code of resolution r: the code of 2**16."""
    return (MAX_PRECISION + 1 - r) << r


@lru_cache(maxsize=None)
def _delta_lengths(r: int, g: int) -> np.ndarray:
    """Code lengths of the zigzagged level changes 0..2*cap: Exp-Golomb shape of order g (made once
    per (r, g), read-only)."""
    z = np.arange(2 * _level_cap(r) + 1)
    lengths = (2 * np.floor(np.log2((z >> g) + 1)) + 1 + g).astype(np.uint8)
    lengths.flags.writeable = False
    return lengths


def level_values(codes: np.ndarray, r: int) -> np.ndarray:
    """Value of each level code: c itself below 2**(r+1), else (2**r + c % 2**r) << (c // 2**r - 1)."""
    c = np.asarray(codes, np.int64)
    e = c >> r
    return np.where(e <= 1, c, ((1 << r) + (c & ((1 << r) - 1))) << np.maximum(e - 1, 0))


@dataclass(frozen=True, eq=False)  # arrays inside: field-wise == would be ambiguous
class Table:
    """A static model: level codes (0 = unused symbol), their resolution r and delta-code order g,
    the precision P, and the frequencies they define (summing to 2**P)."""

    codes: np.ndarray
    resolution: int
    order: int
    precision: int
    freqs: np.ndarray


def _frequencies(codes: np.ndarray, r, precision: int) -> np.ndarray:
    """Frequencies of level codes: each used symbol its level value, except the first symbol with
    the largest code, which gets what the others leave of 2**precision (CorruptFileError if < 1).
    Row by row for (rows, symbols) codes with r a column of their resolutions."""
    freqs = level_values(codes, r)
    implicit = np.argmax(codes, axis=-1)[..., None]
    others = freqs.sum(axis=-1, keepdims=True) - np.take_along_axis(freqs, implicit, -1)
    rest = (1 << precision) - others
    if (rest < 1).any():
        raise CorruptFileError("rANS table: frequencies overfill the precision")
    np.put_along_axis(freqs, implicit, rest, -1)
    return freqs


SCALES = (None, 1, 0.5, 0.25, 0.125, 0)  # _quantise's tries: the nearest levels, then below ever smaller shares


def _try_levels(hist: np.ndarray, rs: Sequence[int], precision: int, scale: Optional[float]) -> list:
    """One try of _quantise at `scale` for each resolution in rs at once (one (r, symbol) array:
    every row the same integers and floating-point comparisons as a try of that r alone): its level
    codes, or None where they do not fit."""
    used = hist > 0
    top = int(np.argmax(hist))
    share = hist * ((1 << precision) / hist.sum())
    target = share if scale is None else share * scale
    t = np.maximum(np.floor(target), 1).astype(np.int64)
    r = np.asarray(rs, np.int64)[:, None]
    shift = np.maximum(np.frexp(t.astype(np.float64))[1] - (r + 1), 0)  # frexp: exact bit length
    codes = np.where(t < 1 << (r + 1), t, ((shift + 1) << r) + (t >> shift) - (1 << r))
    if scale is None:  # round to the nearer of the two levels around the share
        codes = codes + (target * target > level_values(codes, r) * level_values(codes + 1, r))
    codes = np.where(used, codes, 0)
    codes[:, top] = 0  # the others' largest code and total first (codes are >= 0, level_values(0) = 0)
    biggest = codes.max(axis=1)
    rest = (1 << precision) - level_values(codes, r).sum(axis=1)
    out = []
    for i, ri in enumerate(rs):
        row, b = codes[i], int(biggest[i])
        row[top] = max(1, b + int(b in row[:top]))
        out.append(row if rest[i] >= 1 and row[top] <= _level_cap(ri) else None)
    return out


def _quantise(hist: np.ndarray, r: int, precision: int, scales: Sequence[Optional[float]] = SCALES
              ) -> np.ndarray | None:
    """Level codes for a histogram, or None when it has more used symbols than 2**precision.

    Every used symbol but the most frequent gets the level nearest (in ratio) to its share of
    2**precision; when that overfills the total, the level just below its share, then below ever
    smaller shares (down to frequency 1 each). The most frequent symbol gets the smallest code
    that keeps it the first largest: its frequency is the rest. `scales`: the tries (_try_levels)."""
    for scale in scales:
        codes = _try_levels(hist, [r], precision, scale)[0]
        if codes is not None:
            return codes
    return None


@lru_cache(maxsize=None)
def _delta_matrix(r: int) -> np.ndarray:
    """(changes, orders) code lengths of _delta_lengths(r, g) for g = 0..MAX_ORDER as int64 columns:
    a histogram of level changes times this is every order's table bits at once (integers)."""
    m = np.stack([_delta_lengths(r, g).astype(np.int64) for g in range(MAX_ORDER + 1)], axis=1)
    m.flags.writeable = False
    return m


def build_table(histogram: np.ndarray, precision: int | None = None) -> Table:
    """The table that codes `histogram` (counts of symbols 0..A-1) in the fewest bits, table
    included, over r = 0..3 and g = 0..3, at `precision` (None: 12, or more when more than 4096
    symbols are used).
    ValueError when no symbol is used or more symbols are used than 2**precision."""
    hist = np.asarray(histogram, np.int64)
    if hist.ndim != 1 or hist.size > MAX_ALPHABET or (hist < 0).any() or not hist.any():
        raise ValueError("histogram must be 1-D, non-negative, at most 65536 long, not all zero")
    if precision is None:
        precision = max(DEFAULT_PRECISION, (int(np.count_nonzero(hist)) - 1).bit_length())
    if not 1 <= precision <= MAX_PRECISION:
        raise ValueError(f"precision must be in 1..{MAX_PRECISION}")
    hist = hist[: np.flatnonzero(hist)[-1] + 1]
    used = hist > 0
    counts = hist[used]
    size_bytes = len(huffman.write_varint(hist.size)) + 1
    first = _try_levels(hist, range(MAX_RESOLUTION + 1), precision, None)  # every r in one pass (the usual case)
    found = [(r, codes if codes is not None else _quantise(hist, r, precision, SCALES[1:])) for r, codes in enumerate(first)]
    rs = [r for r, codes in found if codes is not None]
    if not rs:
        raise ValueError(f"{int(np.count_nonzero(hist))} used symbols do not fit precision {precision}")
    stack = np.stack([codes for _, codes in found if codes is not None])
    freqs_all = _frequencies(stack, np.asarray(rs, np.int64)[:, None], precision)  # every r's at once
    lengths = precision - np.log2(freqs_all[:, used])
    z = _zigzag(stack)
    best = None
    for n, r in enumerate(rs):
        codes, freqs = stack[n], freqs_all[n]
        coded = float(np.dot(counts, lengths[n]))
        changes = np.bincount(z[n], minlength=2 * _level_cap(r) + 1)  # how often each change occurs
        delta = changes @ _delta_matrix(r)  # each order's bits: the same integers as summing per symbol
        for g in range(MAX_ORDER + 1):
            cost = 8 * (size_bytes + -(-int(delta[g]) // 8)) + coded
            if best is None or cost < best[0] - 1e-9:
                best = (cost, r, g, codes, freqs)
    _, r, g, codes, freqs = best
    return Table(codes, r, g, precision, freqs)


def coded_bits(table: Table, histogram: np.ndarray) -> float:
    """Ideal bits of symbols with `histogram` under `table` (the coder adds ~3 bytes a lane)."""
    hist = np.asarray(histogram, np.int64)
    if hist.size > table.freqs.size and hist[table.freqs.size:].any():
        raise ValueError("histogram holds symbols outside the table")
    hist = hist[: table.freqs.size]
    used = hist > 0
    if (table.freqs[: hist.size][used] == 0).any():
        raise ValueError("histogram holds symbols the table gives no frequency")
    return float(np.dot(hist[used], table.precision - np.log2(table.freqs[: hist.size][used])))


def _zigzag(codes: np.ndarray) -> np.ndarray:
    """Zigzagged level changes along the last axis (from 0 before the first symbol)."""
    delta = np.diff(codes, prepend=0)
    return 2 * np.abs(delta) - (delta < 0)


def write_table(table: Table) -> bytes:
    """varint A (alphabet size, last symbol used), u8 r | g << 2 | (P - 1) << 4, then the A
    zigzagged level changes (code of symbol s minus that of s-1, starting from 0) coded with the
    canonical code of _delta_lengths(r, g), MSB-first, zero-padded to a byte."""
    z = _zigzag(table.codes)
    params = table.resolution | table.order << 2 | (table.precision - 1) << 4
    return (huffman.write_varint(table.codes.size) + bytes([params])
            + huffman.encode(z, _delta_lengths(table.resolution, table.order)))


def read_table(buf: bytes, pos: int) -> tuple[Table, int]:
    """Inverse of write_table: (table, position after it). CorruptFileError on a truncated or
    invalid table."""
    size, pos = huffman.read_varint(buf, pos, MAX_ALPHABET)
    if size == 0:
        raise CorruptFileError("rANS table is empty")
    if pos >= len(buf):
        raise CorruptFileError("rANS table is truncated")
    params = buf[pos]
    r, g, precision = params & 3, (params >> 2) & 3, (params >> 4) + 1
    z, end = huffman.decode_at(buf, 8 * (pos + 1), _delta_lengths(r, g), size)
    if end % 8 and buf[end // 8] & ((1 << (8 - end % 8)) - 1):
        raise CorruptFileError("nonzero padding bits after an rANS table")
    codes = np.cumsum(np.where(z % 2 == 1, -(z + 1) // 2, z // 2))
    if codes.min() < 0 or codes.max() > _level_cap(r) or codes[-1] == 0:
        raise CorruptFileError("rANS table holds a level out of range or an unused last symbol")
    return Table(codes, r, g, precision, _frequencies(codes, r, precision)), (end + 7) // 8


def choose_lanes(count: int) -> int:
    """Fewest lanes (a power of two up to 256) that keep the decoder's loop at MAX_STEPS steps:
    each lane costs about 3 bytes of flushed state."""
    k = 0
    while k < MAX_LANES_LOG2 and -(-count // (1 << k)) > MAX_STEPS:
        k += 1
    return 1 << k


def _as_tables(tables: Table | Sequence[Table], error: type[Exception]) -> list[Table]:
    tables = [tables] if isinstance(tables, Table) else list(tables)
    if not tables or len({t.precision for t in tables}) != 1:
        raise error("rANS stream needs at least one table, all of the same precision")
    return tables


def _which(which: np.ndarray | None, count: int, n_tables: int) -> np.ndarray:
    if which is None:
        return np.zeros(count, np.int64)
    which = np.asarray(which, np.int64).ravel()
    if which.size != count or (count and (which.min() < 0 or which.max() >= n_tables)):
        raise ValueError("`which` needs one table index in range per symbol")
    return which


def _entries(tables: list[Table]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The used (table, symbol) pairs of all tables plus a final no-op entry (frequency M, which
    pads the last step): (first key, frequency, symbol, index of the first entry of each table),
    where the key of table t's slot is t * M + slot."""
    m = 1 << tables[0].precision
    starts, freqs, symbols, first = [], [], [], []
    for t, table in enumerate(tables):
        used = np.flatnonzero(table.freqs)
        cum = np.cumsum(table.freqs) - table.freqs
        first.append(sum(s.size for s in symbols))
        starts.append(t * m + cum[used])
        freqs.append(table.freqs[used])
        symbols.append(used)
    starts.append(np.array([len(tables) * m]))
    freqs.append(np.array([m]))
    symbols.append(np.array([0]))
    return (np.concatenate(starts), np.concatenate(freqs).astype(np.int64), np.concatenate(symbols),
            np.array(first, np.int64))


def encode(symbols: np.ndarray, tables: Table | Sequence[Table], which: np.ndarray | None = None,
           lanes: int | None = None, kernel: Optional[Callable] = None) -> bytes:
    """rANS stream of `symbols` (C order), symbol i coded with tables[which[i]] (default: the
    first table). ValueError on a symbol without frequency, or more symbols than the stream may
    hold (MAX_SYMBOLS_PER_BYTE). `kernel`: a compiled coding loop, as for encode_segments."""
    tables = _as_tables(tables, ValueError)
    s = np.asarray(symbols).ravel()
    n = s.size
    if n == 0:
        return b""
    if s.dtype.kind not in "iu":
        raise ValueError("symbols must be integers")
    s = s.astype(np.int64)
    which = _which(which, n, len(tables))
    lanes = choose_lanes(n) if lanes is None else lanes
    if lanes < 1 or lanes > 1 << MAX_LANES_LOG2 or lanes & (lanes - 1):
        raise ValueError("lanes must be a power of two, 1..256")
    precision = tables[0].precision
    index, offsets, sizes, starts, freqs = entry_index(tables)
    if s.min() < 0 or (s >= sizes[which]).any():
        raise ValueError("symbol outside its table's alphabet")
    e = index[offsets[which] + s]
    if (e < 0).any():
        raise ValueError("symbol with frequency 0 in its table")
    steps = -(-n // lanes)
    e = np.concatenate([e, np.full(steps * lanes - n, starts.size - 1)])
    if kernel is None:
        return _encode_entries(e, freqs, starts, precision, lanes, n)
    out = kernel(e, np.ascontiguousarray(freqs, np.int64), np.ascontiguousarray(starts, np.int64), precision, lanes,
                 STATE_LOW, WORD_BITS)
    check_density(n, out)
    return out


def _encode_entries(e: np.ndarray, freqs: np.ndarray, starts: np.ndarray, precision: int, lanes: int, n: int) -> bytes:
    """The stream of table entries e (a multiple of `lanes` long, padded with the no-op entry)."""
    steps = e.size // lanes
    e = e.reshape(steps, lanes)
    f = freqs[e]
    c = starts[e] & ((1 << precision) - 1)
    limit = f << (32 - precision)
    x = np.full(lanes, STATE_LOW, np.int64)
    chunks = []
    for j in range(steps - 1, -1, -1):
        emit = x >= limit[j]
        if emit.any():
            chunks.append(x[emit] & 0xFFFF)
            x = np.where(emit, x >> WORD_BITS, x)
        q = x // f[j]
        x = (q << precision) + (x - q * f[j]) + c[j]
    words = np.concatenate(chunks[::-1]) if chunks else np.zeros(0, np.int64)
    out = bytes([lanes.bit_length() - 1]) + x.astype("<u4").tobytes() + words.astype("<u2").tobytes()
    check_density(n, out)
    return out


def entry_index(tables: Sequence[Table]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """How a stream codes symbol s of table t: (index, offsets, sizes, starts, freqs), its entry
    being index[offsets[t] + s] (s < sizes[t]; -1: frequency 0), whose first key and frequency are
    starts[entry] and freqs[entry]; the last entry is the no-op one that pads a segment."""
    tables = _as_tables(tables, ValueError)
    starts, freqs, _, first = _entries(tables)
    sizes = np.array([t.freqs.size for t in tables], np.int64)
    offsets = np.cumsum(sizes) - sizes
    index = np.full(int(sizes.sum()), -1, np.int64)
    for t, table in enumerate(tables):
        used = np.flatnonzero(table.freqs)
        index[offsets[t] + used] = first[t] + np.arange(used.size)
    return index, offsets, sizes, starts, freqs


def check_density(total: int, stream: bytes) -> None:
    """ValueError when `total` symbols would exceed MAX_SYMBOLS_PER_BYTE per byte of their stream
    (a decoder refuses such a stream: the bomb guard)."""
    if total > MAX_SYMBOLS_PER_BYTE * len(stream):
        raise ValueError(f"{total} symbols exceed {MAX_SYMBOLS_PER_BYTE} per byte of a {len(stream)}-byte stream")


def encode_segments(segments: Sequence[tuple[np.ndarray, np.ndarray]], tables: Sequence[Table],
                    kernel: Optional[Callable] = None) -> bytes:
    """ONE stream of several segments (symbols, table index per symbol) that a SegmentDecoder
    reads segment by segment, so that a segment's tables may depend on the symbols before it.
    Each segment is padded to whole steps with the no-op entry (frequency M: costs no bits).
    `kernel(entries, freqs, starts, precision, lanes, STATE_LOW, WORD_BITS) -> bytes`, when given,
    is a compiled coding loop that must write exactly what the numpy loop writes."""
    tables = _as_tables(tables, ValueError)
    index, offsets, sizes, starts, freqs = entry_index(tables)
    total = sum(int(np.asarray(s).size) for s, _ in segments)
    lanes = choose_lanes(total)
    parts = []
    for symbols, which in segments:
        sym = np.asarray(symbols, np.int64).ravel()
        which = _which(which, sym.size, len(tables))
        if sym.size and (sym.min() < 0 or (sym >= sizes[which]).any()):
            raise ValueError("symbol outside its table's alphabet")
        e = index[offsets[which] + sym]
        if (e < 0).any():
            raise ValueError("symbol with frequency 0 in its table")
        parts += [e, np.full(-sym.size % lanes, starts.size - 1)]
    e = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if e.size == 0:
        return b""
    if kernel is None:
        return _encode_entries(e, freqs, starts, tables[0].precision, lanes, total)
    out = kernel(np.ascontiguousarray(e, np.int64), np.ascontiguousarray(freqs, np.int64),
                 np.ascontiguousarray(starts, np.int64), tables[0].precision, lanes, STATE_LOW, WORD_BITS)
    check_density(total, out)
    return out


class SegmentDecoder:
    """Reads a stream of encode_segments segment by segment: read(count, which) per segment, in
    order, then finish(); `total` is the symbols of all segments (checked against the data's
    length before anything is allocated). decode() is one segment."""

    def __init__(self, data: bytes, tables: Sequence[Table], total: int, kernel: Optional[Callable] = None):
        """`kernel(x, words, n_words, ptr, starts, freqs, symbols, which, out, precision, STATE_LOW,
        WORD_BITS) -> ptr`, when given, is a compiled step loop that reads exactly what read() does."""
        self.kernel = kernel
        self.tables = _as_tables(tables, CorruptFileError)
        data = bytes(data)
        self.total = total
        if total == 0:
            if data:
                raise CorruptFileError("rANS stream holds data but no symbols")
            return
        if total > MAX_SYMBOLS_PER_BYTE * len(data):
            raise CorruptFileError("rANS stream is too short for its symbol count")
        k = data[0]
        if k > MAX_LANES_LOG2:
            raise CorruptFileError(f"rANS stream: 2**{k} lanes, at most 256 allowed")
        self.lanes = 1 << k
        if len(data) < 1 + 4 * self.lanes or (len(data) - 1) % 2:
            raise CorruptFileError("rANS stream is truncated")
        self.x = np.frombuffer(data, "<u4", self.lanes, 1).astype(np.int64)
        if (self.x < STATE_LOW).any():
            raise CorruptFileError("rANS stream: a lane starts in an invalid state")
        words = np.frombuffer(data, "<u2", offset=1 + 4 * self.lanes).astype(np.int64)
        self.n_words = words.size
        self.words = np.concatenate([words, np.zeros(self.lanes, np.int64)])
        self.ptr = 0
        self.precision = self.tables[0].precision
        self.starts, self.freqs, self.symbols, _ = _entries(self.tables)
        if kernel is not None:
            self.x, self.words, self.starts, self.freqs, self.symbols = (
                np.ascontiguousarray(v, np.int64) for v in (self.x, self.words, self.starts, self.freqs, self.symbols))

    def read(self, count: int, which: np.ndarray | None = None) -> np.ndarray:
        if count == 0:
            return np.zeros(0, np.int64)
        which = _which(which, count, len(self.tables))
        if self.kernel is not None:
            out = np.empty(count, np.int64)
            self.ptr = self.kernel(self.x, self.words, self.n_words, self.ptr, self.starts, self.freqs, self.symbols,
                                   np.ascontiguousarray(which, np.int64), out, self.precision, STATE_LOW, WORD_BITS)
            if self.ptr > self.n_words:
                raise CorruptFileError("rANS stream is truncated")
            return out
        lanes, precision = self.lanes, self.precision
        mask = (1 << precision) - 1
        steps = -(-count // lanes)
        base = (np.concatenate([which, np.full(steps * lanes - count, len(self.tables))]) << precision).reshape(steps, lanes)
        keys = np.empty((steps, lanes), np.int64)
        x, words, ptr = self.x, self.words, self.ptr
        starts, freqs = self.starts, self.freqs
        for j in range(steps):
            key = base[j] + (x & mask)
            keys[j] = key
            e = np.searchsorted(starts, key, "right") - 1
            x = freqs[e] * (x >> precision) + (key - starts[e])
            need = x < STATE_LOW
            n = int(np.count_nonzero(need))
            if n:
                x[need] = (x[need] << WORD_BITS) | words[ptr:ptr + n]
                ptr += n
                if ptr > self.n_words:
                    raise CorruptFileError("rANS stream is truncated")
        self.x, self.ptr = x, ptr
        return self.symbols[np.searchsorted(starts, keys.ravel()[:count], "right") - 1]

    def finish(self) -> None:
        if self.total == 0:
            return
        if self.ptr != self.n_words:
            raise CorruptFileError(f"{2 * (self.n_words - self.ptr)} bytes of trailing data after the rANS stream")
        if (self.x != STATE_LOW).any():
            raise CorruptFileError("rANS stream is damaged (a lane does not end in its initial state)")


def decode(data: bytes, tables: Table | Sequence[Table], count: int, which: np.ndarray | None = None,
           kernel: Optional[Callable] = None) -> np.ndarray:
    """Inverse of encode: exactly `count` symbols (int64) filling all of `data`. CorruptFileError
    when the data is truncated, has trailing bytes, does not end in the initial states, or is
    too short for `count` (MAX_SYMBOLS_PER_BYTE, checked before allocating anything). `kernel`:
    a compiled step loop, as for SegmentDecoder."""
    if count < 0:
        raise ValueError("count must be >= 0")
    reader = SegmentDecoder(data, tables, count, kernel)
    out = reader.read(count, which)
    reader.finish()
    return out
