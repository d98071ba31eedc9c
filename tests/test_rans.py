"""rANS coder (coder 1 of the TENS payload): round trips, compression against the entropy and
Huffman, damage handling, golden bytes, and the per-file choice between Huffman and rANS."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hinercodec.errors import CorruptFileError, UnsupportedFileError
from hinercodec.entropy import huffman as H
from hinercodec.entropy import rans as R
from hinercodec.formats.tensors import QuantTensor, pack_tensors, unpack_tensors

SHAPES = ("uniform", "peaked", "laplace", "single", "two", "sparse")


def histogram(size: int, shape: str, rng: np.random.Generator) -> np.ndarray:
    """Counts of symbols 0..size-1 in one of a few distribution shapes."""
    if shape == "uniform":
        return np.full(size, 5, np.int64)
    if shape == "peaked":  # latent-like: one symbol dominates, a geometric tail
        h = (1e6 * 0.1 ** np.abs(np.arange(size) - size // 2)).astype(np.int64)
        return np.maximum(h, rng.integers(0, 2, size))
    if shape == "laplace":
        return (1000 * np.exp(-np.abs(np.arange(size) - rng.integers(size)) / 4.0)).astype(np.int64)
    h = np.zeros(size, np.int64)
    if shape == "single":
        h[rng.integers(size)] = 3
    elif shape == "two":
        h[rng.choice(size, min(2, size), replace=False)] = [1, 999][: min(2, size)]
    else:  # sparse: few used symbols scattered over a large alphabet
        h[rng.choice(size, min(size, 20), replace=False)] = rng.integers(1, 100, min(size, 20))
    return h


def sample(hist: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(hist.size, count, p=hist / hist.sum())


def entropy_bytes(symbols: np.ndarray) -> float:
    h = np.bincount(symbols)
    p = h[h > 0] / symbols.size
    return float(-(p * np.log2(p)).sum() * symbols.size / 8)


def huffman_bytes(symbols: np.ndarray) -> int:
    h = np.bincount(symbols)
    lengths = H.code_lengths(h)
    return len(H.write_lengths(lengths)) + (int(np.dot(h, lengths[: h.size])) + 7) // 8


def rans_bytes(symbols: np.ndarray) -> tuple[int, int]:
    """(table bytes, stream bytes) and check the round trip on the way."""
    table = R.build_table(np.bincount(symbols))
    data = R.encode(symbols, table)
    assert np.array_equal(R.decode(data, table, symbols.size), symbols)
    return len(R.write_table(table)), len(data)


def test_no_torch():
    code = "import sys, hinercodec.entropy.rans; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 1 << 16), st.sampled_from(SHAPES), st.integers(0, 2**32 - 1), st.integers(0, 3000))
def test_round_trip(size, shape, seed, count):
    rng = np.random.default_rng(seed)
    hist = histogram(size, shape, rng)
    table = R.build_table(hist)
    assert table.freqs.sum() == 1 << table.precision
    assert np.array_equal(table.freqs > 0, hist[: table.freqs.size] > 0)
    assert table.freqs.size == np.flatnonzero(hist)[-1] + 1
    symbols = sample(hist, count, rng)
    data = R.encode(symbols, table)
    assert (data == b"") == (count == 0)
    assert np.array_equal(R.decode(data, table, count), symbols)
    blob = R.write_table(table)
    back, pos = R.read_table(b"xy" + blob + b"z", 2)
    assert pos == 2 + len(blob)
    assert np.array_equal(back.freqs, table.freqs) and np.array_equal(back.codes, table.codes)
    assert (back.resolution, back.order, back.precision) == (table.resolution, table.order, table.precision)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2000), st.integers(0, 8), st.integers(1, 16))
def test_lanes_and_precisions(seed, count, lanes_log2, precision):
    """Any lane count (also more lanes than symbols) and any precision that fits decode back."""
    rng = np.random.default_rng(seed)
    hist = histogram(int(rng.integers(1, 300)), str(rng.choice(SHAPES)), rng)
    try:
        table = R.build_table(hist, precision)
    except ValueError:
        assert np.count_nonzero(hist) > 1 << precision  # every used symbol needs a frequency >= 1
        return
    symbols = sample(hist, count, rng)
    data = R.encode(symbols, table, lanes=1 << lanes_log2)
    assert np.array_equal(R.decode(data, table, count), symbols)


def test_several_tables_in_one_stream():
    rng = np.random.default_rng(7)
    hists = [histogram(40, "peaked", rng), histogram(300, "laplace", rng), histogram(5, "single", rng)]
    tables = [R.build_table(h, 13) for h in hists]
    which = rng.integers(0, 3, 5000)
    symbols = np.array([sample(hists[k], 1, rng)[0] for k in which])
    data = R.encode(symbols, tables, which)
    assert np.array_equal(R.decode(data, tables, symbols.size, which), symbols)
    with pytest.raises(CorruptFileError):  # the same stream read with other tables
        R.decode(data, tables[::-1], symbols.size, which)


def test_single_symbol_costs_only_the_lanes():
    table = R.build_table(np.array([0, 0, 7]))
    assert table.freqs.tolist() == [0, 0, 1 << table.precision]
    for count in (1, 1000, 100_000):
        data = R.encode(np.full(count, 2), table)
        lanes = 1 << data[0]
        assert len(data) == 1 + 4 * lanes and lanes == R.choose_lanes(count)
        assert R.decode(data, table, count).tolist() == [2] * count


def test_near_entropy_and_below_huffman_on_peaked_data():
    """100 K latent-like symbols: within 1 % of the entropy plus the table, far below Huffman's
    floor of one bit a symbol."""
    rng = np.random.default_rng(0)
    values = np.arange(-8, 9)
    p = np.where(values == 0, 0.8, np.where(np.abs(values) == 1, 0.09, 0.02 / 14))
    symbols = rng.choice(values.size, 100_000, p=p)
    table_bytes, stream_bytes = rans_bytes(symbols)
    assert table_bytes < 16
    assert stream_bytes < 1.01 * entropy_bytes(symbols)
    assert stream_bytes + table_bytes < 0.8 * huffman_bytes(symbols)
    very = rng.choice(3, 100_000, p=[0.97, 0.015, 0.015])  # 0.22 bits a symbol
    table_bytes, stream_bytes = rans_bytes(very)
    assert stream_bytes < 1.03 * entropy_bytes(very) and stream_bytes < 0.25 * very.size / 8


def test_near_entropy_on_broad_data():
    rng = np.random.default_rng(1)
    laplace = np.rint(rng.laplace(0, 3, 20000)).astype(np.int64)
    uniform = rng.integers(0, 256, 20000)
    for symbols in (laplace - laplace.min(), uniform):
        table_bytes, stream_bytes = rans_bytes(symbols)
        assert table_bytes < 45  # as small as a Huffman table (uniform 8 bit: 37 bytes)
        assert stream_bytes < 1.01 * entropy_bytes(symbols)
        assert table_bytes + stream_bytes < 1.005 * huffman_bytes(symbols)


def test_table_level_scale():
    # r = 1: values 1, 2, 3 (exact below 2**(r+1)), then 4, 6, 8, 12, 16, ... (2 levels an octave)
    assert R.level_values(np.arange(1, 11), 1).tolist() == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
    assert R.level_values(np.arange(1, 18), 0).tolist() == [1 << i for i in range(17)]
    for r in range(4):
        assert R.level_values(np.array([R._level_cap(r)]), r)[0] == 1 << 16


def test_delta_code_is_exp_golomb():
    """The canonical code of _delta_lengths(r, g) is: k one-bits, a zero, q + 1 - 2**k in k bits
    (q = z >> g, k = floor(log2(q + 1))), then the g low bits of z."""
    for r in range(4):
        for g in range(4):
            lengths = R._delta_lengths(r, g)
            codes = H.canonical_codes(lengths)
            for z in range(lengths.size):
                q = z >> g
                k = (q + 1).bit_length() - 1
                word = ((((1 << k) - 1) << 1) << k | (q + 1 - (1 << k))) << g | (z & ((1 << g) - 1))
                assert (int(codes[z]), int(lengths[z])) == (word, 2 * k + 1 + g)


def test_golden():
    # counts 12, 3, 1 at precision 4 (M = 16): r = 1 (levels 1, 2, 3, 4, 6, 8, ...) represents
    # 3 and 1 exactly; symbol 0 has the largest code and takes the rest, 16 - 3 - 1 = 12.
    table = R.build_table(np.array([12, 3, 1]), 4)
    assert (table.resolution, table.order, table.precision) == (1, 0, 4)
    assert table.codes.tolist() == [3, 3, 1] and table.freqs.tolist() == [12, 3, 1]
    # A = 3; params 0x31 (r = 1, g = 0, P - 1 = 3); changes +3, 0, -2 -> zigzag 6, 0, 3 ->
    # 11011 0 11000, zero padding
    assert R.write_table(table).hex() == "0331db00"
    data = R.encode(np.array([0, 1, 0, 0, 2, 0, 1]), table)
    assert data.hex() == "0091669e05"  # one lane, final state 94267025 = 0x059E6691, no words
    assert R.decode(bytes.fromhex("0091669e05"), table, 7).tolist() == [0, 1, 0, 0, 2, 0, 1]


def reference_decode(data: bytes, tables: list[R.Table], which: np.ndarray) -> list[int]:
    """The decoder of HNR.md ("rANS stream"), one symbol at a time in plain Python."""
    lanes = 1 << data[0]
    x = [int.from_bytes(data[1 + 4 * i:5 + 4 * i], "little") for i in range(lanes)]
    assert all(1 << 16 <= v < 1 << 32 for v in x)
    words = [int.from_bytes(data[i:i + 2], "little") for i in range(1 + 4 * lanes, len(data), 2)]
    out, read = [], 0
    for i, t in enumerate(which):
        lane, table = i % lanes, tables[t]
        m = 1 << table.precision
        slot = x[lane] % m
        cum = 0
        for s, f in enumerate(table.freqs.tolist()):
            if cum <= slot < cum + f:
                break
            cum += f
        out.append(s)
        x[lane] = f * (x[lane] // m) + slot - cum
        if x[lane] < 1 << 16:
            x[lane] = (x[lane] << 16) + words[read]
            read += 1
        assert x[lane] < 1 << 32
    assert read == len(words) and x == [1 << 16] * lanes
    return out


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 400), st.integers(0, 3))
def test_matches_the_spec_decoder(seed, count, lanes_log2):
    rng = np.random.default_rng(seed)
    hists = [histogram(int(rng.integers(1, 60)), str(rng.choice(SHAPES)), rng) for _ in range(2)]
    precision = int(rng.integers(6, 17))
    tables = [R.build_table(h, precision) for h in hists]
    which = rng.integers(0, 2, count)
    symbols = np.array([sample(hists[k], 1, rng)[0] for k in which])
    data = R.encode(symbols, tables, which, lanes=1 << lanes_log2)
    assert reference_decode(data, tables, which) == symbols.tolist()


def _stream() -> tuple[bytes, R.Table, np.ndarray]:
    rng = np.random.default_rng(3)
    hist = histogram(30, "laplace", rng)
    symbols = sample(hist, 300, rng)
    table = R.build_table(hist)
    return R.encode(symbols, table, lanes=4), table, symbols


def test_truncation_and_damage_are_caught():
    data, table, symbols = _stream()
    assert np.array_equal(R.decode(data, table, symbols.size), symbols)
    for cut in range(len(data)):
        with pytest.raises(CorruptFileError):
            R.decode(data[:cut], table, symbols.size)
    with pytest.raises(CorruptFileError, match="trailing"):
        R.decode(data + b"\x00\x00", table, symbols.size)
    with pytest.raises(CorruptFileError):
        R.decode(data + b"\x00", table, symbols.size)
    # The end check (all words read, every lane back in its initial state) is cheap, not a CRC
    # (the chunk's CRC-32 is): it catches almost every single-bit flip, and nothing else escapes.
    missed = 0
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            try:
                missed += R.decode(bytes(bad), table, symbols.size).size == symbols.size
            except CorruptFileError:
                pass
    assert missed <= 0.01 * 8 * len(data)
    for count in (symbols.size - 1, symbols.size + 1):
        with pytest.raises(CorruptFileError):
            R.decode(data, table, count)
    with pytest.raises(CorruptFileError):  # refused before allocating anything of that size
        R.decode(data, table, 10**12)
    with pytest.raises(CorruptFileError):
        R.decode(b"", table, 1)


def test_every_table_truncation_is_caught():
    rng = np.random.default_rng(4)
    blob = R.write_table(R.build_table(histogram(256, "laplace", rng)))
    for cut in range(len(blob)):
        with pytest.raises(CorruptFileError):
            R.read_table(blob[:cut], 0)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 500), st.integers(0, 2))
def test_garbage_stream_raises_only_corrupt(data, count, which):
    rng = np.random.default_rng(which)
    table = R.build_table(histogram(50, SHAPES[which], rng))
    try:
        symbols = R.decode(data, table, count)
    except CorruptFileError:
        return
    assert symbols.size == count


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_garbage_table_raises_only_corrupt(data):
    try:
        table, pos = R.read_table(data, 0)
    except CorruptFileError:
        return
    assert pos <= len(data) and table.freqs.sum() == 1 << table.precision and table.freqs.min() >= 0
    assert R.write_table(table) == data[:pos]  # one encoding per table


def test_caller_errors_are_value_errors():
    table = R.build_table(np.array([5, 0, 5]))
    other = R.build_table(np.array([5, 5]), 13)
    for call in (lambda: R.encode(np.array([1]), table),  # frequency 0
                 lambda: R.encode(np.array([3]), table),  # outside the alphabet
                 lambda: R.encode(np.array([0.5]), table),
                 lambda: R.encode(np.array([0]), [table, other], np.array([0])),  # mixed precisions
                 lambda: R.encode(np.array([0]), table, lanes=3),
                 lambda: R.build_table(np.zeros(4, np.int64)),
                 lambda: R.build_table(np.ones(5000, np.int64), 12),  # 5000 symbols need P >= 13
                 lambda: R.build_table(np.array([-1, 2]))):
        with pytest.raises(ValueError):
            call()


def test_speed_100k_symbols():
    rng = np.random.default_rng(5)
    symbols = rng.choice(17, 100_000, p=np.r_[0.8, 0.09, 0.09, np.full(14, 0.02 / 14)])
    table = R.build_table(np.bincount(symbols))
    start = time.perf_counter()
    data = R.encode(symbols, table)
    middle = time.perf_counter()
    back = R.decode(data, table, symbols.size)
    end = time.perf_counter()
    assert np.array_equal(back, symbols)
    assert middle - start < 0.5 and end - middle < 0.5  # about 0.05 s each on one idle core


# --- the TENS payload: coder 1 and the per-file choice -----------------------------------------

GOLDEN_HUFFMAN = "00" "01" "57" "02" "03" "000080bf" "00000000" "0000003f" "0000803e" "01" "03f74a" "2d80"


def latents(seed: int, shape=(1, 2, 64, 64)) -> QuantTensor:
    """Integer latents as the latent model stores them: mostly 0 and +-1, shifted by their min."""
    z = np.rint(np.random.default_rng(seed).laplace(0, 0.3, shape)).astype(np.int64)
    return QuantTensor(shape, max(1, int(z.max() - z.min()).bit_length()), (z - z.min()).astype(np.uint16),
                       np.array([z.min()], np.float32), np.ones(1, np.float32))


def weights(seed: int, shape, bits: int = 8) -> QuantTensor:
    w = np.random.default_rng(seed).laplace(0, 1, shape)
    lo, hi = w.min(), w.max()
    q = np.rint((w - lo) / (hi - lo) * (2**bits - 1)).astype(np.uint16)
    return QuantTensor(shape, bits, q, np.array([lo], np.float32), np.array([(hi - lo) / (2**bits - 1)], np.float32))


def same(a: list[QuantTensor], b: list[QuantTensor]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and x.bits == y.bits and np.array_equal(np.asarray(x.symbols), y.symbols)
        and np.array_equal(x.offset, y.offset) and np.array_equal(x.step, y.step) for x, y in zip(a, b))


def latent_model() -> list[QuantTensor]:
    return [latents(0), latents(1, (1, 2, 32, 32)), latents(2, (1, 2, 16, 16)),
            weights(3, (16, 6, 1, 1)), weights(4, (16,)), weights(5, (12, 16, 3, 3)), weights(6, (12,))]


def test_peaked_latents_pick_rans():
    tensors = latent_model()
    huffman, ranscoded, auto = pack_tensors(tensors, 0), pack_tensors(tensors, 1), pack_tensors(tensors)
    assert auto == ranscoded and auto[0] == 1
    assert len(ranscoded) < 0.9 * len(huffman)
    assert len(pack_tensors(tensors[:3], 1)) < 0.8 * len(pack_tensors(tensors[:3], 0))  # latents alone
    assert same(tensors, unpack_tensors(auto)) and same(tensors, unpack_tensors(huffman))


def test_golden_payload_keeps_huffman():
    golden = QuantTensor((2, 3), 8, np.array([[1, 1, 0], [2, 1, 2]], np.uint16),
                         np.array([-1.0, 0.0], np.float32), np.array([0.5, 0.25], np.float32))
    assert pack_tensors([golden]).hex() == GOLDEN_HUFFMAN
    assert len(pack_tensors([golden], 1)) >= len(bytes.fromhex(GOLDEN_HUFFMAN))
    assert pack_tensors([]).hex() == "000000"
    assert pack_tensors([], 1).hex() == "010000" and unpack_tensors(bytes.fromhex("010000")) == []


def test_golden_rans_payload():
    # One 1 x 8 latent tensor (2 bits, offset -1): symbols 1 1 1 0 1 2 1 1.
    t = QuantTensor((1, 8), 2, np.array([[1, 1, 1, 0, 1, 2, 1, 1]], np.uint16),
                    np.array([-1.0], np.float32), np.array([1.0], np.float32))
    expected = ("01" "01" "41" "01" "08" "000080bf" "0000803f"  # coder 1, N = 1, tensor header
                "01"  # T = 1
                "03" "b0" "f2d8"  # A = 3, r = 0, g = 0, P = 12; levels 10, 11, 10: 512, (3072), 512
                "00" "00ca6901")  # one lane, final state 0x0169CA00, no words; T = 1: no indices
    assert pack_tensors([t], 1).hex() == expected
    assert same([t], unpack_tensors(bytes.fromhex(expected)))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(1, 9), max_size=4), st.integers(1, 16),
                          st.sampled_from(["latent", "const", "uniform"])), max_size=6),
       st.integers(0, 2**32 - 1))
def test_payload_round_trip_and_choice(specs, seed):
    rng = np.random.default_rng(seed)
    tensors = []
    for shape, bits, kind in specs:
        shape = tuple(shape)
        q = {"latent": np.minimum(np.abs(np.rint(rng.laplace(0, 0.5, shape))), 2**bits - 1),
             "const": np.full(shape, 2**bits - 1), "uniform": rng.integers(0, 2**bits, shape)}[kind]
        tensors.append(QuantTensor(shape, bits, np.asarray(q, np.uint16).reshape(shape),
                                   np.zeros(1, np.float32), np.ones(1, np.float32)))
    sizes = [len(pack_tensors(tensors, coder)) for coder in (0, 1)]
    if tensors and all(t.bits == 8 for t in tensors):  # the stored coder (2) can hold 8-bit tensors
        sizes.append(len(pack_tensors(tensors, 2)))
    auto = pack_tensors(tensors)
    # the smallest wins; on a tie the earlier coder (Huffman before rANS before stored)
    assert len(auto) == min(sizes) and auto[0] == sizes.index(min(sizes))
    for coder in (0, 1):
        assert same(tensors, unpack_tensors(pack_tensors(tensors, coder)))


def test_payload_damage():
    data = pack_tensors([latents(0, (1, 2, 16, 16)), latents(1, (1, 2, 8, 8)), weights(2, (10, 9))], 1)
    for cut in [*range(0, len(data), 5), *range(len(data) - 12, len(data))]:
        with pytest.raises(CorruptFileError):
            unpack_tensors(data[:cut])
    with pytest.raises(CorruptFileError, match="trailing"):
        unpack_tensors(data + b"\x00\x00")
    rng = np.random.default_rng(0)
    for where in rng.integers(0, len(data), 60):
        bad = bytearray(data)
        bad[where] ^= 1 << int(rng.integers(8))
        try:
            unpack_tensors(bytes(bad))
        except (CorruptFileError, UnsupportedFileError):
            pass
    with pytest.raises(UnsupportedFileError, match="coder 3"):
        unpack_tensors(b"\x03" + data[1:])


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_payload_raises_only_file_errors(blob):
    try:
        tensors = unpack_tensors(b"\x01" + blob)
    except (CorruptFileError, UnsupportedFileError):
        return
    assert same(tensors, unpack_tensors(pack_tensors(tensors, 1)))


def _levels_reference(hist: np.ndarray, r: int, precision: int):
    """The level codes of one resolution as the format's rule reads, one try after the other:
    the level nearest each used symbol's share of 2**precision, else just below ever smaller shares;
    the most frequent symbol the smallest code that keeps it the first largest (None: no fit)."""
    used = hist > 0
    top = int(np.argmax(hist))
    share = hist * ((1 << precision) / hist.sum())
    for scale in (None, 1, 0.5, 0.25, 0.125, 0):
        target = share if scale is None else share * scale
        t = np.maximum(np.floor(target), 1).astype(np.int64)
        shift = np.maximum(np.frexp(t.astype(np.float64))[1] - (r + 1), 0)
        codes = np.where(t < 1 << (r + 1), t, ((shift + 1) << r) + (t >> shift) - (1 << r))
        if scale is None:
            codes = codes + (target * target > R.level_values(codes, r) * R.level_values(codes + 1, r))
        codes = np.where(used, codes, 0)
        codes[top] = 0
        biggest = int(codes.max())
        rest = (1 << precision) - int(R.level_values(codes, r).sum())
        codes[top] = max(1, biggest + int(biggest in codes[:top]))
        if rest >= 1 and codes[top] <= R._level_cap(r):
            return codes
    return None


def _build_table_reference(hist: np.ndarray, precision: int) -> R.Table:
    """build_table as the format defines it, one resolution and order after the other (the
    library's batches the resolutions): the levels, their frequencies (the first largest code's
    symbol gets the rest), the ideal coded bits and the table's own bits of each (r, g), the
    cheapest kept (an earlier one on a tie within 1e-9)."""
    hist = hist[: np.flatnonzero(hist)[-1] + 1]
    used = hist > 0
    best = None
    for r in range(R.MAX_RESOLUTION + 1):
        codes = _levels_reference(hist, r, precision)
        if codes is None:
            continue
        freqs = R.level_values(codes, r)
        implicit = int(np.argmax(codes))
        freqs[implicit] = (1 << precision) - (int(freqs.sum()) - int(freqs[implicit]))
        coded = float(np.dot(hist[used], precision - np.log2(freqs[used])))
        delta = np.diff(codes, prepend=0)
        changes = np.bincount(2 * np.abs(delta) - (delta < 0), minlength=2 * R._level_cap(r) + 1)
        for g in range(R.MAX_ORDER + 1):
            delta_bits = int(np.dot(changes, R._delta_lengths(r, g).astype(np.int64)))
            cost = 8 * (len(H.write_varint(hist.size)) + 1 + -(-delta_bits // 8)) + coded
            if best is None or cost < best[0] - 1e-9:
                best = (cost, R.Table(codes, r, g, precision, freqs))
    if best is None:
        raise ValueError("no resolution fits")
    return best[1]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=300), st.integers(0, 5), st.sampled_from([4, 8, 12, 16]))
def test_build_table_is_the_reference(counts, zeros_every, precision):
    """The batched build_table makes the same table (levels, resolution, order) as the per-resolution
    reference, on any histogram (sparse ones by zeroing every few symbols)."""
    hist = np.array(counts, np.int64)
    if zeros_every:
        hist[::zeros_every + 1] = 0
    if not hist.any():
        hist[-1] = 1
    try:
        want = _build_table_reference(hist, precision)
    except ValueError:
        with pytest.raises(ValueError):
            R.build_table(hist, precision)
        return
    got = R.build_table(hist, precision)
    assert (got.resolution, got.order, got.precision) == (want.resolution, want.order, want.precision)
    assert np.array_equal(got.codes, want.codes) and np.array_equal(got.freqs, want.freqs)
