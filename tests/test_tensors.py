"""TENS payload: round trips of realistic quantised tensors, dequantisation, damage, golden bytes."""
from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hinercodec.errors import CorruptFileError, UnsupportedFileError
from hinercodec.entropy import huffman
from hinercodec.formats.tensors import QuantTensor, pack_tensors, unpack_tensors

# The worked example of _spec_tensors.md: one 2 x 3 tensor, 8 bits, one (offset, step) per row.
GOLDEN = QuantTensor(shape=(2, 3), bits=8, symbols=np.array([[1, 1, 0], [2, 1, 2]], np.uint16),
                     offset=np.array([-1.0, 0.0], np.float32), step=np.array([0.5, 0.25], np.float32))
GOLDEN_HEX = "00" "01" "57" "02" "03" "000080bf" "00000000" "0000003f" "0000803e" "01" "03f74a" "2d80"


def quantize(w: np.ndarray, bits: int, per_slice: bool, name: str = "") -> QuantTensor:
    """Min/max affine quantisation, per tensor or per slice along axis 0 (as the codec does)."""
    groups = w.reshape(w.shape[0], -1) if per_slice else w.reshape(1, -1)
    lo, hi = groups.min(axis=1), groups.max(axis=1)
    step = np.maximum((hi - lo) / (2**bits - 1), 1e-12).astype(np.float32)
    offset = lo.astype(np.float32)
    q = np.clip(np.rint((groups - offset[:, None]) / step[:, None]), 0, 2**bits - 1)
    return QuantTensor(tuple(w.shape), bits, q.astype(np.uint16).reshape(w.shape), offset, step, name)


def model_like(seed: int = 0) -> list[QuantTensor]:
    """Laplacian weights in the shapes of a small HINER net, mixed bit depths and groupings."""
    rng = np.random.default_rng(seed)
    spec = [((12, 24), 8, False), ((12,), 8, False), ((128, 12), 8, True), ((128,), 6, False),
            ((24, 8, 3, 3), 8, True), ((24,), 4, False), ((20, 6, 3, 3), 10, True), ((20,), 10, False),
            ((1, 4, 3, 3), 5, True), ((1,), 7, False), ((), 9, False), ((3, 1, 2, 1, 1, 2, 1), 1, True)]
    out = []
    for i, (shape, bits, per_slice) in enumerate(spec):
        w = rng.laplace(0, 0.1, shape).astype(np.float32).reshape(shape)
        out.append(quantize(w, bits, per_slice and len(shape) > 0, f"t{i}"))
    return out


def assert_same(a: list[QuantTensor], b: list[QuantTensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.bits == y.bits
        assert np.array_equal(np.asarray(x.symbols), y.symbols) and y.symbols.shape == x.shape
        assert np.array_equal(x.offset, y.offset) and np.array_equal(x.step, y.step)
        assert y.offset.dtype == np.float32 and y.step.dtype == np.float32


def test_no_torch():
    code = "import sys, hinercodec.formats.tensors; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_round_trip_model_like():
    tensors = model_like()
    data = pack_tensors(tensors)
    back = unpack_tensors(data)
    assert_same(tensors, back)
    assert all(y.name == "" for y in back)  # names are not stored
    for x, y in zip(tensors, back):
        assert np.array_equal(x.dequantize(), y.dequantize())


def test_beats_fixed_width():
    rng = np.random.default_rng(5)
    tensors = [quantize(rng.laplace(0, 0.1, shape).astype(np.float32), 8, False)
               for shape in [(24, 24), (24,), (256, 24), (256,), (52, 16, 3, 3), (52,)]]
    symbols = sum(t.symbols.size for t in tensors)
    floats = sum(8 * t.offset.size for t in tensors)
    assert len(pack_tensors(tensors)) - floats < 0.9 * symbols  # < 7.2 bits per 8-bit weight


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(1, 9), max_size=4), st.integers(1, 16), st.booleans(),
                          st.sampled_from(["laplace", "const", "uniform"])), max_size=6),
       st.integers(0, 2**32 - 1))
def test_round_trip_random(specs, seed):
    rng = np.random.default_rng(seed)
    tensors = []
    for shape, bits, per_slice, kind in specs:
        shape = tuple(shape)
        w = {"laplace": rng.laplace(0, 1, shape), "const": np.full(shape, 0.5),
             "uniform": rng.random(shape)}[kind].astype(np.float32).reshape(shape)
        tensors.append(quantize(w, bits, per_slice and len(shape) > 0 and shape[0] > 1))
    assert_same(tensors, unpack_tensors(pack_tensors(tensors)))


def test_dequantize_formula():
    t = model_like()[4]  # 4-D, one (offset, step) per output channel
    expected = np.empty(t.shape, np.float32)
    for g in range(t.shape[0]):
        expected[g] = np.float32(t.offset[g]) + np.float32(t.step[g]) * t.symbols[g].astype(np.float32)
    out = t.dequantize()
    assert out.dtype == np.float32 and np.array_equal(out, expected)
    whole = model_like()[0]  # one group for the whole tensor
    expected = whole.offset[0] + whole.step[0] * whole.symbols.astype(np.float32)
    assert np.array_equal(whole.dequantize(), expected)
    assert GOLDEN.dequantize().tolist() == [[-0.5, -0.5, -1.0], [0.5, 0.25, 0.5]]


def test_golden_bytes():
    assert pack_tensors([GOLDEN]).hex() == GOLDEN_HEX
    assert_same([GOLDEN], unpack_tensors(bytes.fromhex(GOLDEN_HEX)))
    assert pack_tensors([]).hex() == "000000"
    assert unpack_tensors(bytes.fromhex("000000")) == []


def from_distribution(p: np.ndarray, size: int, seed: int) -> QuantTensor:
    symbols = np.random.default_rng(seed).choice(p.size, size, p=p / p.sum()).astype(np.uint16)
    bits = (p.size - 1).bit_length()
    return QuantTensor((size,), bits, symbols, np.zeros(1, np.float32), np.ones(1, np.float32))


def test_tables_shared_only_when_it_pays():
    peaked = np.exp(-np.abs(np.arange(256) - 128) / 8.0)
    # Different distributions: each gets its own table (peaked) or the flat 8-bit code (uniform).
    two = pack_tensors([from_distribution(peaked, 4000, 0), from_distribution(np.ones(256), 4000, 1)], coder=0)
    assert two[2 + 2 * 11] == 2  # table count after coder, count, 2 headers of 11 bytes
    # Alike distributions share one table.
    alike = [from_distribution(peaked, 4000, seed) for seed in range(3)]
    assert pack_tensors(alike, coder=0)[2 + 3 * 11] == 1


def test_unknown_coder():
    data = bytearray(pack_tensors(model_like()))
    data[0] = 3
    with pytest.raises(UnsupportedFileError, match="coder 3"):
        unpack_tensors(bytes(data))


def test_truncated_and_trailing():
    data = pack_tensors(model_like()[:6])
    for cut in [*range(0, len(data), 11), *range(len(data) - 12, len(data))]:
        with pytest.raises(CorruptFileError):
            unpack_tensors(data[:cut])
    with pytest.raises(CorruptFileError, match="trailing"):
        unpack_tensors(data + b"\x00")


def test_inconsistent_headers():
    golden = bytes.fromhex(GOLDEN_HEX)
    cases = {
        "dimension of 0": golden[:3] + b"\x00" + golden[4:],
        "one slice": golden[:3] + b"\x01" + golden[4:],  # per-slice flag on a 1 x 3 tensor
        "non-finite": golden[:5] + bytes.fromhex("0000807f") + golden[9:],  # +inf offset
        "Huffman tables": golden[:21] + b"\x00" + golden[22:],  # tensors but no table
        "never used": golden[:21] + b"\x02" + golden[22:25] + golden[22:],  # unused 2nd table
        "exceeds": golden[:2] + b"\x50" + golden[3:],  # the same symbols but only 1 bit each
    }
    for message, data in cases.items():
        with pytest.raises(CorruptFileError, match=message):
            unpack_tensors(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_raises_only_file_errors(data):
    try:
        tensors = unpack_tensors(data)
    except (CorruptFileError, UnsupportedFileError):
        return
    unpack_tensors(pack_tensors(tensors))  # whatever decodes is a valid tensor list


@functools.lru_cache(maxsize=None)
def small_payload() -> bytes:
    return pack_tensors(model_like()[:5])


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 7))
def test_bit_flips_raise_only_file_errors(where, bit):
    data = bytearray(small_payload())
    data[where % len(data)] ^= 1 << bit
    try:
        unpack_tensors(bytes(data))
    except (CorruptFileError, UnsupportedFileError):
        pass


def test_caller_errors_are_value_errors():
    good = model_like()[0]
    bad = [
        QuantTensor(good.shape, 3, good.symbols, good.offset, good.step),  # symbols need 8 bits
        QuantTensor(good.shape, 17, good.symbols, good.offset, good.step),
        QuantTensor((12, 25), 8, good.symbols, good.offset, good.step),
        QuantTensor(good.shape, 8, good.symbols, np.zeros(5, np.float32), np.ones(5, np.float32)),
        QuantTensor(good.shape, 8, good.symbols, np.array([np.nan], np.float32), good.step),
        QuantTensor(good.shape, 8, good.symbols.astype(np.float32), good.offset, good.step),
        QuantTensor((1,) * 8, 8, np.zeros((1,) * 8, np.uint16), good.offset, good.step),
    ]
    for t in bad:
        with pytest.raises(ValueError):
            pack_tensors([t])


def test_table_index_bits():
    # Three tables need 2-bit indices at the start of the bitstream.
    rng = np.random.default_rng(2)
    a = quantize(rng.laplace(0, 1, (80, 80)).astype(np.float32), 8, False)
    b = quantize(rng.random((80, 80)).astype(np.float32), 8, False)
    c = quantize(rng.laplace(0, 1, (80, 80)).astype(np.float32), 4, False)
    tensors = [a, b, c, b]
    data = pack_tensors(tensors)
    assert data[2 + 4 * 11] == 3
    assert_same(tensors, unpack_tensors(data))
    assert huffman.read_varint(data, 1) == (4, 2)
