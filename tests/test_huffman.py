"""Canonical Huffman coder: round trips, code properties, optimality, damage handling, golden bytes."""
from __future__ import annotations

import heapq
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hinercodec.errors import CorruptFileError
from hinercodec.entropy import huffman as H

SHAPES = ("uniform", "skewed", "random", "single", "two")


def make_freqs(size: int, shape: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if shape == "uniform":
        return np.full(size, 7, np.int64)
    if shape == "skewed":  # geometric-like: long codes at the tail
        return (rng.geometric(0.15, size) ** 4).astype(np.int64)
    if shape == "single":
        f = np.zeros(size, np.int64)
        f[rng.integers(size)] = 5
        return f
    if shape == "two":
        f = np.zeros(size, np.int64)
        f[rng.choice(size, min(2, size), replace=False)] = [1, 1000][: min(2, size)]
        return f
    return rng.integers(0, 50, size) * (rng.random(size) < 0.6)


def huffman_cost(freqs: np.ndarray) -> tuple[int, int]:
    """(total bits, depth) of a plain, unlimited Huffman code: the reference for optimality."""
    heap = [(int(f), 0, i) for i, f in enumerate(freqs) if f > 0]
    heapq.heapify(heap)
    cost = 0
    tie = len(heap)
    while len(heap) > 1:
        a, da, _ = heapq.heappop(heap)
        b, db, _ = heapq.heappop(heap)
        cost += a + b
        tie += 1
        heapq.heappush(heap, (a + b, max(da, db) + 1, tie))
    return cost, heap[0][1]


def test_no_torch():
    code = "import sys, hinercodec.entropy.huffman; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 1024), st.sampled_from(SHAPES), st.integers(0, 2**32 - 1), st.integers(0, 3000))
def test_round_trip(size, shape, seed, count):
    freqs = make_freqs(size, shape, seed)
    lengths = H.code_lengths(freqs)
    assert lengths.dtype == np.uint8 and lengths.shape == freqs.shape
    assert np.array_equal(lengths > 0, freqs > 0)
    used = np.flatnonzero(freqs)
    if used.size == 0:
        return
    symbols = np.random.default_rng(seed).choice(used, count)
    data = H.encode(symbols, lengths)
    assert len(data) == (int(lengths[symbols].astype(np.int64).sum()) + 7) // 8
    assert np.array_equal(H.decode(data, lengths, count), symbols)
    table = H.write_lengths(lengths)
    back, pos = H.read_lengths(b"xy" + table + b"z", 2)
    assert pos == 2 + len(table) and np.array_equal(back, lengths)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 1024), st.sampled_from(SHAPES), st.integers(0, 2**32 - 1), st.integers(1, 16))
def test_kraft_and_limit(size, shape, seed, max_len):
    freqs = make_freqs(size, shape, seed)
    n_used = int(np.count_nonzero(freqs))
    if n_used > 1 << max_len:
        with pytest.raises(ValueError):
            H.code_lengths(freqs, max_len)
        return
    lengths = H.code_lengths(freqs, max_len).astype(np.int64)
    assert lengths.max(initial=0) <= max(max_len, 1)
    assert np.sum(2.0 ** -lengths[lengths > 0]) <= 1.0
    if n_used > 1:  # package-merge is optimal: never better than Huffman, equal when unconstrained
        cost = int(np.dot(lengths, freqs))
        ref, depth = huffman_cost(freqs)
        assert cost >= ref
        if depth <= max_len:
            assert cost == ref


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 1024), st.sampled_from(SHAPES), st.integers(0, 2**32 - 1))
def test_within_one_bit_of_entropy(size, shape, seed):
    freqs = make_freqs(size, shape, seed)
    p = freqs[freqs > 0] / freqs.sum()
    if p.size < 2 or np.ceil(-np.log2(p)).max() > H.MAX_CODE_LEN:
        return  # Shannon's code would break the length limit: the bound does not apply
    lengths = H.code_lengths(freqs)
    mean = np.dot(lengths[freqs > 0], p)
    entropy = -np.dot(p, np.log2(p))
    assert entropy - 1e-9 <= mean <= entropy + 1


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 1024), st.sampled_from(SHAPES), st.integers(0, 2**32 - 1))
def test_canonical(size, shape, seed):
    lengths = H.code_lengths(make_freqs(size, shape, seed)).astype(np.int64)
    codes = H.canonical_codes(lengths).astype(np.int64)
    used = np.flatnonzero(lengths)
    if used.size == 0:
        return
    order = used[np.lexsort((used, lengths[used]))]
    # In (length, symbol) order: first code 0, then previous + 1 shifted by the growth in length.
    prev_code, prev_len = -1, lengths[order[0]]
    for s in order:
        assert codes[s] == (prev_code + 1) << (lengths[s] - prev_len)
        prev_code, prev_len = codes[s], lengths[s]
    # Prefix-free: the code intervals, scaled to 16 bits, are disjoint and increasing.
    lo = codes[order] << (16 - lengths[order])
    hi = (codes[order] + 1) << (16 - lengths[order])
    assert np.all(lo[1:] >= hi[:-1]) and hi[-1] <= 1 << 16
    assert np.all(codes[lengths == 0] == 0)


def test_single_symbol_and_empty():
    lengths = H.code_lengths(np.array([0, 0, 9, 0]))
    assert lengths.tolist() == [0, 0, 1, 0]
    data = H.encode(np.full(13, 2), lengths)
    assert data == b"\x00\x00"
    assert H.decode(data, lengths, 13).tolist() == [2] * 13
    assert H.encode(np.array([], np.int64), lengths) == b""
    assert H.decode(b"", lengths, 0).size == 0
    assert not H.code_lengths(np.zeros(5, np.int64)).any()


def test_alphabet_of_65536():
    freqs = np.random.default_rng(3).integers(1, 40, 1 << 16)
    lengths = H.code_lengths(freqs)
    assert lengths.max() == 16
    symbols = np.random.default_rng(4).integers(0, 1 << 16, 20000)
    assert np.array_equal(H.decode(H.encode(symbols, lengths), lengths, symbols.size), symbols)
    back, _ = H.read_lengths(H.write_lengths(lengths), 0)
    assert np.array_equal(back, lengths)


def test_golden():
    # freqs 1,2,3,4 -> lengths 3,3,2,1 -> canonical codes 110, 111, 10, 0
    lengths = H.code_lengths(np.array([1, 2, 3, 4]))
    assert lengths.tolist() == [3, 3, 2, 1]
    assert H.canonical_codes(lengths).tolist() == [0b110, 0b111, 0b10, 0b0]
    assert H.encode(np.array([3, 2, 0, 1]), lengths).hex() == "5b80"  # 0 10 110 111, zero padded
    # size 4; changes -14, 0, -1, -1 -> zigzag 27, 0, 1, 1 -> 111101100 0 100 100
    assert H.write_lengths(lengths).hex() == "04f624"
    assert H.write_varint(300).hex() == "ac02"


def test_varint():
    for value in [0, 1, 127, 128, 300, 2**40, 2**63 - 1]:
        data = H.write_varint(value)
        assert H.read_varint(b"\x07" + data, 1) == (value, 1 + len(data))
    for bad in [b"", b"\x80", b"\x80\x00", b"\xff" * 10 + b"\x01"]:
        with pytest.raises(CorruptFileError):
            H.read_varint(bad, 0)
    with pytest.raises(CorruptFileError):
        H.read_varint(H.write_varint(1000), 0, limit=999)


def _stream(seed: int = 0, count: int = 500):
    rng = np.random.default_rng(seed)
    freqs = rng.integers(1, 100, 40)
    lengths = H.code_lengths(freqs)
    symbols = rng.integers(0, 40, count)
    return H.encode(symbols, lengths), lengths, symbols


def test_truncated_and_trailing():
    data, lengths, symbols = _stream()
    for cut in [0, 1, len(data) // 2, len(data) - 1]:
        with pytest.raises(CorruptFileError):
            H.decode(data[:cut], lengths, symbols.size)
    with pytest.raises(CorruptFileError, match="trailing"):
        H.decode(data + b"\x00", lengths, symbols.size)
    with pytest.raises(CorruptFileError):
        H.decode(data, lengths, symbols.size + 50)
    with pytest.raises(CorruptFileError):  # refused before allocating anything of that size
        H.decode(data, lengths, 10**12)


def test_nonzero_padding():
    lengths = np.array([1, 1], np.uint8)
    data = H.encode(np.array([1, 0, 1]), lengths)
    assert data == b"\xa0"
    with pytest.raises(CorruptFileError, match="padding"):
        H.decode(b"\xa1", lengths, 3)


def test_invalid_code():
    lengths = np.array([1, 2, 0], np.uint8)  # codes 0 and 10: the prefix 11 is no code
    with pytest.raises(CorruptFileError, match="invalid Huffman code"):
        H.decode(b"\x0c", lengths, 5)  # 0 0 0 0 11...


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64), st.integers(1, 400), st.integers(0, 3))
def test_garbage_bitstream_raises_only_corrupt(data, count, which):
    lengths = [np.array([1, 2, 0], np.uint8), _stream()[1], np.array([2, 2, 2], np.uint8),
               np.array([1, 1], np.uint8)][which]
    try:
        symbols = H.decode(data, lengths, count)
    except CorruptFileError:
        return
    assert symbols.size == count and H.encode(symbols, lengths) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_garbage_table_raises_only_corrupt(data):
    try:
        lengths, pos = H.read_lengths(data, 0)
    except CorruptFileError:
        return
    assert pos <= len(data) and lengths.max(initial=0) <= H.MAX_CODE_LEN
    assert np.sum(2.0 ** -lengths[lengths > 0].astype(np.int64)) <= 1.0
    assert H.write_lengths(lengths) == data[:pos]


def test_table_kraft_violation():
    # three symbols of length 1: a valid-looking table that is no prefix code
    table = H.write_varint(3) + H.encode(np.array([31, 0, 0]), H._DELTA_LENGTHS)
    with pytest.raises(CorruptFileError, match="Kraft"):
        H.read_lengths(table, 0)
    with pytest.raises(CorruptFileError):
        H.read_lengths(H.write_lengths(np.full(300, 9, np.uint8))[:-3], 0)


def test_caller_errors_are_value_errors():
    lengths = np.array([1, 1], np.uint8)
    with pytest.raises(ValueError):
        H.encode(np.array([2]), lengths)
    with pytest.raises(ValueError):
        H.encode(np.array([0]), np.array([1, 1, 1]))  # Kraft > 1
    with pytest.raises(ValueError):
        H.code_lengths(np.array([1.5, 2.0]))
    with pytest.raises(ValueError):
        H.code_lengths(np.array([-1, 2]))
    with pytest.raises(ValueError):
        H.code_lengths(np.ones(5, np.int64), max_len=2)


def test_one_million_symbols_round_trip():
    """A large input round trips (the vectorised paths; speed belongs to benchmarks, not to a timed
    test on a shared machine)."""
    rng = np.random.default_rng(0)
    p = np.exp(-np.abs(np.arange(256) - 128) / 12.0)
    symbols = rng.choice(256, 1_000_000, p=p / p.sum())
    lengths = H.code_lengths(np.bincount(symbols, minlength=256))
    data = H.encode(symbols, lengths)
    back = H.decode(data, lengths, symbols.size)
    assert np.array_equal(back, symbols)
