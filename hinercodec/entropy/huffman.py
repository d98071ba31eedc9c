"""Length-limited canonical Huffman coding, vectorised with numpy (never torch).

Canonical: a decoder needs only each symbol's code length, so a table costs a few dozen bytes and
the codes follow from the lengths by one fixed rule (shorter codes first, ties by symbol value).

MAX_CODE_LEN = 16 because the decoder looks up the next `max length` bits in a table of
2**max_length entries at every bit offset: 16 bits keeps that table at 64 K entries, a window of
16 bits starting at any bit fits in 3 bytes, and alphabets up to 2**16 symbols (weights of up to
16 bits) still have a code. The limit costs nothing in practice: on fitted and synthetic models of
20-50 K weights at 8-12 bits the unlimited Huffman code was at most 16 deep (a limit of 14 would
have cost up to 0.14 %, 12 up to 2.5 %); only symbols rarer than about 2**-15 want longer codes.

Bitstreams are MSB-first: the first code starts at the most significant bit of byte 0; the last
byte is padded with zero bits.
"""
from __future__ import annotations

import numpy as np

from hinercodec.errors import CorruptFileError

MAX_CODE_LEN = 16
MAX_ALPHABET = 1 << 16

# Code of the length table (write_lengths): the change between consecutive code lengths, zigzag
# mapped (0, -1, +1, -2, +2, ... -> 0, 1, 2, 3, 4, ...) and coded with a fixed prefix code of
# Exp-Golomb shape (value v costs 2*floor(log2(v+1))+1 bits), itself canonical so that the Huffman
# coder below writes and reads it. Unused symbols count as length MAX_CODE_LEN+1, which keeps the
# rare symbols in the tails of a distribution (lengths 15, 16, unused, 16, ...) a smooth sequence.
_UNUSED = MAX_CODE_LEN + 1
_DELTA_ALPHABET = 2 * MAX_CODE_LEN + 1  # zigzag of the changes -16..+16
_DELTA_LENGTHS = (2 * np.floor(np.log2(np.arange(1, _DELTA_ALPHABET + 1))) + 1).astype(np.uint8)

# The decoder's chain walk takes one Python step per 2**_STRIDE_LOG2 symbols (see decode_at);
# strides of 8 to 64 decode 1e6 symbols equally fast (about 0.1 s), 128 is slower.
_STRIDE_LOG2 = 5


def write_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, least significant group first, high bit = more follows."""
    if value < 0:
        raise ValueError(f"varint must be >= 0, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(buf: bytes, pos: int, limit: int = (1 << 63) - 1) -> tuple[int, int]:
    """(value, new pos). Truncated, non-minimal (a redundant 0x80 ... 0x00 tail) or > limit ->
    CorruptFileError, so that every value has exactly one encoding."""
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise CorruptFileError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte == 0 and shift > 7:
                raise CorruptFileError("non-minimal varint")
            break
        if shift > 63:
            raise CorruptFileError("varint too long")
    if value > limit:
        raise CorruptFileError(f"varint value {value} exceeds {limit}")
    return value, pos


def _check_lengths(lengths: np.ndarray) -> np.ndarray:
    """Validated code lengths as int64 (ValueError: a caller bug, not a damaged file)."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not (lengths.dtype.kind in "iu" or lengths.size == 0):
        raise ValueError("code lengths must be a 1-D integer array")
    if lengths.size > MAX_ALPHABET:
        raise ValueError(f"alphabet of {lengths.size} symbols exceeds {MAX_ALPHABET}")
    out = lengths.astype(np.int64)
    if out.size and (out.min() < 0 or out.max() > MAX_CODE_LEN):
        raise ValueError(f"code lengths must be in 0..{MAX_CODE_LEN}")
    if _kraft(out) > 1 << MAX_CODE_LEN:
        raise ValueError("code lengths violate the Kraft inequality")
    return out


def _kraft(lengths: np.ndarray) -> int:
    """Kraft sum in units of 2**-MAX_CODE_LEN (a complete code sums to 2**MAX_CODE_LEN)."""
    used = lengths[lengths > 0]
    return int(np.sum(np.left_shift(1, MAX_CODE_LEN - used, dtype=np.int64)))


def code_lengths(freqs: np.ndarray, max_len: int = MAX_CODE_LEN) -> np.ndarray:
    """Optimal code lengths no longer than `max_len` (package-merge); 0 marks an unused symbol.

    Package-merge rather than Huffman plus a fix-up: it is optimal under the limit, exact in
    integers (so every platform builds the same code) and vectorises per level. Ties are broken
    by symbol value, so the result is deterministic. A single used symbol gets length 1.
    """
    f = np.asarray(freqs)
    if f.ndim != 1 or not (f.dtype.kind in "iub" or f.size == 0):
        raise ValueError("frequencies must be a 1-D integer array")
    if f.size > MAX_ALPHABET:
        raise ValueError(f"alphabet of {f.size} symbols exceeds {MAX_ALPHABET}")
    if not 1 <= max_len <= MAX_CODE_LEN:
        raise ValueError(f"max_len must be in 1..{MAX_CODE_LEN}, got {max_len}")
    f = f.astype(np.int64)
    if f.size and f.min() < 0:
        raise ValueError("frequencies must be >= 0")
    lengths = np.zeros(f.size, np.uint8)
    used = np.flatnonzero(f)
    n = used.size
    if n <= 1:
        lengths[used] = 1
        return lengths
    if n > 1 << max_len:
        raise ValueError(f"{n} symbols cannot be coded in at most {max_len} bits")
    order = used[np.argsort(f[used], kind="stable")]
    leaves = f[order]
    # Lists from the deepest level (max_len) up to level 1; for each keep, at every prefix of the
    # merged list, how many of its items are leaves (symbols) rather than packages.
    leaf_counts = [np.arange(1, n + 1)]
    items = leaves
    for _ in range(max_len - 1):
        pairs = items.size // 2 * 2
        packages = items[0:pairs:2] + items[1:pairs:2]
        merged = np.concatenate([leaves, packages])
        idx = np.argsort(merged, kind="stable")  # leaves before packages of equal weight
        items = merged[idx]
        leaf_counts.append(np.cumsum(idx < n))
    # Take the 2n-2 lightest items of level 1; every package taken at level d takes its two
    # parts at level d+1. A symbol's length is the number of levels at which it is taken, and the
    # leaves taken at a level are always the lightest ones.
    depth = np.zeros(n, np.int64)
    take = 2 * n - 2
    for counts in reversed(leaf_counts):
        taken_leaves = int(counts[take - 1]) if take else 0
        depth[:taken_leaves] += 1
        take = 2 * (take - taken_leaves)
    lengths[order] = depth
    return lengths


def _canonical_order(lengths: np.ndarray) -> np.ndarray:
    """Used symbols sorted by (length, symbol): the order in which canonical codes are assigned."""
    used = np.flatnonzero(lengths)
    return used[np.argsort(lengths[used], kind="stable")]


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code of every symbol (uint32, 0 for unused symbols).

    Walking the used symbols in (length, symbol) order, each code is the previous code plus one,
    shifted left by the growth in length; the first code is all zeros.
    """
    lengths = _check_lengths(lengths)
    codes = np.zeros(lengths.size, np.uint32)
    order = _canonical_order(lengths)
    span = np.left_shift(1, MAX_CODE_LEN - lengths[order], dtype=np.int64)
    start = np.cumsum(span) - span  # where each code's interval begins, in 2**-MAX_CODE_LEN units
    codes[order] = start >> (MAX_CODE_LEN - lengths[order])
    return codes


def pack_codes(codes: np.ndarray, nbits: np.ndarray) -> bytes:
    """Concatenate codes (code i has nbits[i] <= 17 bits) MSB-first, zero-padded to a byte."""
    n = np.asarray(nbits, dtype=np.int64)
    if n.size == 0:
        return b""
    end = np.cumsum(n)
    start = end - n
    nbytes = (int(end[-1]) + 7) // 8
    # Each code lands inside the 24-bit window of the 3 bytes from its first byte: r + len <= 24.
    word = np.asarray(codes, dtype=np.int64) << (24 - (start & 7) - n)
    first = start >> 3
    where = np.concatenate([first, first + 1, first + 2])
    parts = np.concatenate([word >> 16, (word >> 8) & 0xFF, word & 0xFF])
    # Codes never share a bit, so adding their bytes is the same as OR-ing them (exact in float64).
    out = np.bincount(where, weights=parts, minlength=nbytes + 2)[:nbytes]
    return out.astype(np.uint8).tobytes()


def encode(symbols: np.ndarray, lengths: np.ndarray) -> bytes:
    """Canonical Huffman bitstream of `symbols` (any shape, read in C order)."""
    lengths = _check_lengths(lengths)
    s = np.asarray(symbols).ravel()
    if s.size == 0:
        return b""
    if s.dtype.kind not in "iu":
        raise ValueError("symbols must be integers")
    if s.min() < 0 or s.max() >= lengths.size or not lengths[s].all():
        raise ValueError("symbol outside the code's alphabet or without a code")
    return pack_codes(canonical_codes(lengths)[s], lengths[s])


def _lookup_tables(lengths: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(symbol, length) for every `width`-bit window; length 0 marks a window no code starts.

    In canonical order each code owns a contiguous run of 2**(width-len) windows."""
    order = _canonical_order(lengths)
    reps = np.left_shift(1, width - lengths[order])
    sym = np.zeros(1 << width, np.uint16)
    ln = np.zeros(1 << width, np.uint8)
    filled = int(reps.sum())
    sym[:filled] = np.repeat(order, reps)
    ln[:filled] = np.repeat(lengths[order], reps)
    return sym, ln


def _windows(data: np.ndarray, bit_pos: int, n: int, width: int) -> np.ndarray:
    """The `width` bits starting at each of the bit offsets bit_pos .. bit_pos+n-1 (zeros past
    the end of data)."""
    b0 = bit_pos >> 3
    b1 = min(data.size, ((bit_pos + n - 1 + width) >> 3) + 1)
    chunk = np.zeros(b1 - b0 + 2, np.uint32)
    chunk[: b1 - b0] = data[b0:b1]
    word = (chunk[:-2] << 16) | (chunk[1:-1] << 8) | chunk[2:]
    shifts = (24 - width - np.arange(8)).astype(np.uint32)
    win = (word[:, None] >> shifts) & np.uint32((1 << width) - 1)
    first = bit_pos - 8 * b0
    return win.ravel()[first:first + n]


def decode_at(data: bytes, bit_pos: int, lengths: np.ndarray, count: int) -> tuple[np.ndarray, int]:
    """Decode `count` symbols starting at bit `bit_pos` of `data`: (symbols int64, end bit).

    No Python step per symbol: look up (symbol, length) at EVERY bit offset, so each offset knows
    where the next code starts; _STRIDE_LOG2 rounds of pointer doubling give the start 32 codes
    ahead; one Python step per 32 codes walks those from the first bit, and 31 vectorised steps
    fill in the codes between.
    Raises CorruptFileError when the bits run out or hold no valid code.
    """
    lengths = _check_lengths(lengths)
    if count < 0:
        raise ValueError("count must be >= 0")
    if count == 0:
        return np.zeros(0, np.int64), bit_pos
    if not lengths.any():
        raise CorruptFileError("Huffman table has no symbols but symbols are expected")
    buf = np.frombuffer(data, np.uint8)
    if count > buf.size * 8 - bit_pos:  # every code takes at least one bit
        raise CorruptFileError("Huffman bitstream is truncated")
    width = int(lengths.max())
    n = min(buf.size * 8 - bit_pos, count * width)  # offsets that can start one of the codes
    sym_lut, len_lut = _lookup_tables(lengths, width)
    win = _windows(buf, bit_pos, n, width)
    idx_t = np.int32 if n < (1 << 31) - 1 else np.int64
    step = np.zeros(n + 1, idx_t)
    step[:n] = len_lut[win]
    nxt = np.arange(n + 1, dtype=idx_t) + step
    nxt[(step == 0) | (nxt > n)] = n  # invalid code or past the end: jump to the sink at n
    jump = nxt
    for _ in range(_STRIDE_LOG2):
        jump = jump[jump]
    stride = 1 << _STRIDE_LOG2
    rows = -(-count // stride)
    chain = np.empty((stride, rows), idx_t)
    p = 0
    coarse = chain[0]
    for r in range(rows):
        coarse[r] = p
        p = jump[p]
    for k in range(1, stride):
        chain[k] = nxt[chain[k - 1]]
    pos = chain.T.ravel()[:count]
    ln = step[pos]
    bad = (ln == 0) | (pos + ln > n)
    if bad.any():
        k = int(np.argmax(bad))
        if pos[k] < n and ln[k] == 0:
            raise CorruptFileError(f"invalid Huffman code at bit {bit_pos + int(pos[k])}")
        raise CorruptFileError("Huffman bitstream is truncated")
    end = bit_pos + int(pos[-1]) + int(ln[-1])
    return sym_lut[win[pos]].astype(np.int64), end


def check_end(data: bytes, end_bit: int) -> None:
    """A bitstream must end in its last byte with zero padding: anything else is damage."""
    if len(data) != (end_bit + 7) // 8:
        raise CorruptFileError(f"{len(data) - (end_bit + 7) // 8} bytes of trailing data after the bitstream")
    if end_bit % 8 and data[-1] & ((1 << (8 - end_bit % 8)) - 1):
        raise CorruptFileError("nonzero padding bits after the bitstream")


def decode(data: bytes, lengths: np.ndarray, count: int) -> np.ndarray:
    """Inverse of encode: exactly `count` symbols filling all of `data` (int64)."""
    symbols, end = decode_at(data, 0, lengths, count)
    check_end(data, end)
    return symbols


def write_lengths(lengths: np.ndarray) -> bytes:
    """Self-delimiting code-length table: varint alphabet size, then the Exp-Golomb-shaped coded
    changes between consecutive lengths (see _DELTA_LENGTHS), zero-padded to a byte."""
    lengths = _check_lengths(lengths)
    values = np.where(lengths > 0, lengths, _UNUSED)
    delta = np.diff(values, prepend=_UNUSED)
    zigzag = 2 * np.abs(delta) - (delta < 0)
    return write_varint(lengths.size) + encode(zigzag, _DELTA_LENGTHS)


def read_lengths(buf: bytes, pos: int) -> tuple[np.ndarray, int]:
    """Inverse of write_lengths: (lengths uint8, position after the table). CorruptFileError on
    a table that is truncated, out of range or not a prefix code (Kraft sum > 1)."""
    size, pos = read_varint(buf, pos, MAX_ALPHABET)
    if size == 0:
        return np.zeros(0, np.uint8), pos
    zigzag, end = decode_at(buf, pos * 8, _DELTA_LENGTHS, size)
    if end % 8 and buf[end // 8] & ((1 << (8 - end % 8)) - 1):
        raise CorruptFileError("nonzero padding bits after a Huffman table")
    delta = np.where(zigzag % 2 == 1, -(zigzag + 1) // 2, zigzag // 2)
    values = _UNUSED + np.cumsum(delta)
    if values.min() < 1 or values.max() > _UNUSED:
        raise CorruptFileError("Huffman table holds a code length out of range")
    lengths = np.where(values == _UNUSED, 0, values)
    if _kraft(lengths) > 1 << MAX_CODE_LEN:
        raise CorruptFileError("Huffman table is not a prefix code (Kraft sum > 1)")
    return lengths.astype(np.uint8), (end + 7) // 8
