"""The compiled hot paths of the transform codec (codecs/transform/_fast.c) against the numpy
reference code they replace: identical histograms, size estimates and packed bytes, for
any thread count, on real scenes and on awkward shapes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hinercodec.codecs.transform import bitstream, wavelet

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

pytestmark = pytest.mark.skipif(bitstream._fast is None, reason="the compiled extension is not built")


def _pyramid(images: np.ndarray, step: float, rounding: float = 0.35):
    levels = wavelet.levels_for(*images.shape[1:])
    pyr = wavelet.forward(images, levels)

    def q(b):
        return (np.sign(b) * np.floor(np.abs(b) / step + rounding)).astype(np.int64)

    return q(pyr[0]), [tuple(q(b) for b in d) for d in pyr[1]]


def _real_images(k: int = 5, side: int = 40) -> np.ndarray:
    path = DATA / "houston2018_crop.mat"
    if not path.is_file():
        pytest.skip("shared scenes not found")
    from scipy.io import loadmat  # the raw file (no dependence on the readers' own tests)

    x = loadmat(path)["houston"][:side, : side + 3, :k].astype(np.float64)
    x = (x - x.mean(axis=(0, 1))) / x.std()
    return np.moveaxis(x, -1, 0)


def _case(name: str) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(1)
    return {"real": lambda: (_real_images(), 0.02), "real-coarse": lambda: (_real_images(3, 24), 0.3),
            "odd": lambda: (rng.laplace(size=(3, 71, 37)) * 50, 1.0), "tiny": lambda: (rng.laplace(size=(2, 1, 5)) * 4, 1.0),
            "escapes": lambda: (rng.laplace(size=(2, 33, 20)) * 1e5, 1.0)}[name]()


@pytest.mark.parametrize("name", ["real", "real-coarse", "odd", "tiny", "escapes"])
@pytest.mark.parametrize("signs", [False, True])
def test_fast_matches_numpy(monkeypatch, name, signs):
    images, step = _case(name)
    pyr = _pyramid(images, step)
    monkeypatch.setattr(bitstream, "FAST", False)
    coded, hist, sign_counts = bitstream._histograms(pyr, signs)
    ref_stats = bitstream._stats(pyr, signs)
    ref_bits = bitstream.estimate_bits(pyr, signs)
    ref_pack = bitstream.pack(pyr, signs)
    monkeypatch.setattr(bitstream, "FAST", True)
    for threads in (1, 2, 3, 7):
        monkeypatch.setattr(bitstream, "THREADS", threads)
        h, s, total, esc = bitstream._stats(pyr, signs)
        assert np.array_equal(h, ref_stats[0]) and np.array_equal(s, ref_stats[1])
        assert (total, esc) == ref_stats[2:]
        assert bitstream.estimate_bits(pyr, signs) == ref_bits
    assert np.array_equal(h, hist) and np.array_equal(s, sign_counts)
    assert bitstream.pack(pyr, signs) == ref_pack  # the compiled stream: the same bytes
    assert bitstream.pack(pyr, signs, stats=(h, s, total, esc)) == ref_pack  # an estimate's statistics given
    back = bitstream.unpack(ref_pack, images.shape[0], *images.shape[1:], len(pyr[1]), signs)
    assert np.array_equal(back[0], pyr[0])
    assert all(np.array_equal(a, b) for d, e in zip(back[1], pyr[1]) for a, b in zip(d, e))


def test_fast_refuses_huge_magnitudes():
    pyr = _pyramid(np.full((1, 16, 16), 1.0), 1e-13)
    with pytest.raises(ValueError):
        bitstream.estimate_bits(pyr, True)


def test_table_cost_matches_reference():
    rng = np.random.default_rng(3)
    for trial in range(400):
        hist = np.zeros(bitstream.ALPHABET, np.int64)
        width = int(rng.integers(1, bitstream.ALPHABET))
        hist[:width] = rng.geometric(rng.uniform(0.05, 0.9), width) * rng.integers(0, 2, width) * rng.integers(1, 1000)
        hist[int(rng.integers(0, width))] += 1
        if trial % 3 == 0:
            hist[2:bitstream.ESCAPE:2] = 0  # magnitudes only
        for unsigned in (False, True):
            assert bitstream._table_cost(hist, unsigned) == bitstream._table_cost_reference(hist, unsigned)


@pytest.mark.parametrize("name", ["real", "odd", "escapes"])
def test_fast_unpack_matches_numpy(monkeypatch, name):
    images, step = _case(name)
    pyr = _pyramid(images, step)
    data = bitstream.pack(pyr, True)
    args = (images.shape[0], *images.shape[1:], len(pyr[1]), True)
    monkeypatch.setattr(bitstream, "FAST", False)
    ref = bitstream.unpack(data, *args)
    vec = bitstream.pack_vectors([np.arange(-40, 40) ** 3, np.arange(5)])
    ref_vec = bitstream.unpack_vectors(vec, 0, [80, 5])
    monkeypatch.setattr(bitstream, "FAST", True)
    got = bitstream.unpack(data, *args)
    assert np.array_equal(got[0], ref[0])
    assert all(np.array_equal(a, b) for d, e in zip(got[1], ref[1]) for a, b in zip(d, e))
    got_vec = bitstream.unpack_vectors(vec, 0, [80, 5])
    assert got_vec[1] == ref_vec[1] and all(np.array_equal(a, b) for a, b in zip(got_vec[0], ref_vec[0]))
    # damaged payloads fail the same way on both paths (CorruptFileError, never a crash)
    rng = np.random.default_rng(5)
    for trial in range(12):
        bad = bytearray(data)
        if trial % 3 == 0:
            bad = bad[: int(rng.integers(1, len(bad)))]
        else:
            for _ in range(3):
                bad[int(rng.integers(0, len(bad)))] ^= 1 << int(rng.integers(0, 8))
        outcome = []
        for fast in (False, True):
            monkeypatch.setattr(bitstream, "FAST", fast)
            try:
                r = bitstream.unpack(bytes(bad), *args)
                outcome.append(("ok", r[0].tobytes() + b"".join(b.tobytes() for d in r[1] for b in d)))
            except Exception as exc:  # noqa: BLE001
                outcome.append((type(exc).__name__, b""))
        assert outcome[0] == outcome[1]


@pytest.mark.parametrize("name", ["real", "real-coarse", "odd", "escapes"])
def test_approximate_estimate_is_close(name):
    """The compiled estimate decides "fits" only more than encoder.FIT_MARGIN (1e-6) from the
    budget: it must stay orders of magnitude closer than that to the exact estimate."""
    images, _ = _case(name)
    for step in (0.003, 0.02, 0.1, 0.5, 2.0, 30.0):
        pyr = _pyramid(images, step)
        for signs in (False, True):
            exact = bitstream.estimate_bits(pyr, signs)
            bits, ties, _ = bitstream.estimate_bits_approx(pyr, signs)
            assert abs(bits - exact) <= 1e-10 * abs(exact) + 1e-6, (step, signs, bits, exact)


def test_param_freqs_compiled_path_matches():
    """The compiled param_freqs is exercised through the estimate: a histogram whose best table is
    parametric gives the same cost in both."""
    rng = np.random.default_rng(7)
    for _ in range(50):
        hist = np.zeros((1 + 8 * 3 * 12, bitstream.ALPHABET), np.int64)
        row = int(rng.integers(1, hist.shape[0]))
        theta = rng.uniform(0.1, 0.95)
        mags = np.minimum(rng.geometric(1 - theta, 5000), 60000)
        sym, _, _ = bitstream.to_symbols(mags * rng.integers(0, 2, mags.size))
        hist[row] = np.bincount(sym, minlength=bitstream.ALPHABET)
        exact = bitstream.plan_tables(hist, True)[3]
        est, _ = bitstream._fast.estimate(hist, np.zeros((bitstream.N_SIGN_CONTEXTS, 2), np.int64), 0, True)
        rest = est - (8.0 + 24.0)  # the fixed terms the compiled estimate adds (no signs: their count and map)
        assert abs(rest - exact) <= 1e-9 * exact



@pytest.mark.parametrize("shape", [(3, 64, 48), (2, 37, 53), (1, 9, 8), (40, 31), (2, 2, 5), (1, 3, 2), (2, 100, 1)])
def test_compiled_wavelet_matches_numpy(monkeypatch, shape):
    x = np.random.default_rng(sum(shape)).normal(size=shape) * 100
    levels = max(1, wavelet.levels_for(*shape[-2:], smallest=2))
    got = wavelet.forward(x, levels)
    back = wavelet.inverse(got)
    monkeypatch.setattr(wavelet, "FAST", False)
    ref = wavelet.forward(x, levels)
    ref_back = wavelet.inverse(ref)
    def same(a, b):  # bit for bit, signed zeros included
        return a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()

    assert same(got[0], ref[0])
    assert all(same(a, b) for d, e in zip(got[1], ref[1]) for a, b in zip(d, e))
    assert same(back, ref_back)
    monkeypatch.setattr(wavelet, "FAST", True)
    assert same(wavelet.inverse(ref), ref_back)


@pytest.mark.parametrize("shape", [(3, 64, 48), (2, 37, 53), (1, 9, 8)])
def test_wavelet_into_storage(shape):
    """wavelet.forward's detail bands made in given memory (an earlier pyramid's, recycled by the
    encoder): the same values; pyramid_size is exactly what it takes; too little falls back."""
    x = np.random.default_rng(len(shape) + shape[-1]).normal(size=shape) * 50
    levels = wavelet.levels_for(*shape[-2:], smallest=2)
    ref = wavelet.forward(x, levels)
    n = wavelet.pyramid_size(shape, levels)
    assert n == sum(b.size for d in ref[1] for b in d)
    for storage in (np.full(n, np.nan), np.full(n + 7, np.nan), np.full(max(n // 2, 1), np.nan)):
        got = wavelet.forward(x, levels, storage)
        assert np.array_equal(got[0], ref[0])
        assert all(np.array_equal(a, b) for d, e in zip(got[1], ref[1]) for a, b in zip(d, e))
    got = wavelet.forward(x, levels, storage := np.empty(n))
    assert np.shares_memory(got[1][0][0], storage)


@pytest.mark.parametrize("shape", [(3, 64, 48), (2, 37, 29), (1, 9, 200)])
def test_inverse_wavelet_in_work_memory(shape):
    """wavelet.inverse's levels before the last made in given work memory (the tiled decoder's
    pool): the same images; inverse_work_size is what it takes; too little falls back to fresh."""
    x = np.random.default_rng(shape[-1]).normal(size=shape) * 50
    levels = wavelet.levels_for(*shape[-2:], smallest=2)
    pyr = wavelet.forward(x, levels)
    ref = wavelet.inverse(pyr)
    n = wavelet.inverse_work_size(*shape, levels)
    assert n == sum(shape[0] * (h + lh[0]) * (w + hl[1]) for (h, w), (hl, lh, _) in _inner_levels(shape, levels))
    for work in (np.full(n, np.nan), np.full(n + 5, np.nan), np.full(max(n // 2, 1), np.nan)):
        assert np.array_equal(wavelet.inverse(pyr, work=work), ref)
        assert np.array_equal(wavelet.inverse(pyr, np.full(shape, np.nan), work), ref)


def _inner_levels(shape, levels):
    """(LL shape, (HL, LH, HH) shapes) of each inverse level but the last, coarsest first."""
    (h, w), det = wavelet.shapes(shape[1], shape[2], levels)
    found = []
    for hl, lh, hh in reversed(det[1:]):
        found.append(((h, w), (hl, lh, hh)))
        h, w = h + lh[0], w + hl[1]
    return found


def test_encoder_memory_reuse_keeps_the_bytes(monkeypatch):
    """The encoder's component-image buffer and recycled pyramid memory (a tile's analysis, from
    encoder.IMAGES_BUFFER_FROM bytes) change no byte: a real crop encoded in tiles, and whole with
    the reuse forced on, with them used on every array and not at all, over a search, its exact
    candidates and a re-aim."""
    from hinercodec import api
    from hinercodec.codecs.transform import encoder
    from hinercodec.formats.cubeio import read_cube

    path = DATA / "houston2018_crop.mat"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    cube = np.ascontiguousarray(read_cube(path).data[:64, :80])
    plain = encoder.analyse

    def analyse_reusing(*args, **kwargs):
        a = plain(*args, **kwargs)
        a.reuse = True
        return a

    files = []
    for start in (0, 1 << 62):
        monkeypatch.setattr(encoder, "IMAGES_BUFFER_FROM", start)
        tiled = [api.encode(cube, bpppb=r, effort=3, tile=32).data for r in (0.3, 0.9)]
        monkeypatch.setattr(encoder, "analyse", analyse_reusing)
        whole = [api.encode(cube, bpppb=r, effort=3).data for r in (0.3, 0.9)]
        monkeypatch.setattr(encoder, "analyse", plain)
        files.append(tiled + whole)
    assert files[0] == files[1]


@pytest.mark.parametrize("name", ["real", "real-coarse", "odd", "tiny", "escapes"])
@pytest.mark.parametrize("fast", [False, True])
def test_predicted_size_is_within_its_margin(monkeypatch, name, fast):
    """plan_section makes pack's bytes (the same file with or without it), and predicted_size is
    within the encoder's margin (encoder.Prepared.margin) of the section's true size, compiled
    stream or numpy (the path of nodata pyramids)."""
    from hinercodec.codecs.transform import encoder
    from hinercodec.entropy import rans

    images, step = _case(name)
    monkeypatch.setattr(bitstream, "FAST", fast)
    for s in (step, 4 * step, step / 8):
        pyr = _pyramid(images, s)
        section = bitstream.plan_section(pyr, True)
        data = bitstream.pack(pyr, True, section=section)
        assert data == bitstream.pack(pyr, True)
        margin = encoder.PREDICT_MARGIN + rans.choose_lanes(section.total) // 2
        assert abs(bitstream.predicted_size(section) - len(data)) <= margin


def test_sized_files_are_the_coded_files(monkeypatch):
    """The encoder sizes its candidate files by prediction and codes only the one it keeps: the
    same file as coding every candidate; and when a prediction misses by more than its margin (here
    made to), the search runs again coding every file, so the file still fits the budget."""
    from hinercodec import api
    from hinercodec.codecs.transform import encoder
    from hinercodec.formats.cubeio import read_cube

    path = DATA / "houston2018_crop.mat"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    cube = np.ascontiguousarray(read_cube(path).data[:48, :64])
    search = encoder._search_file
    coded = []

    def search_coding(job, predict):
        coded.append(predict)
        return search(job, False)

    for rate in (0.2, 0.7):
        predicted = api.encode(cube, bpppb=rate, effort=3)
        monkeypatch.setattr(encoder, "_search_file", search_coding)
        assert api.encode(cube, bpppb=rate, effort=3).data == predicted.data
        monkeypatch.setattr(encoder, "_search_file", search)
    assert coded == [True, True]
    monkeypatch.setattr(encoder, "FIRST_AIM", 1.05)  # the first file over the budget...
    right = api.encode(cube, bpppb=0.2, effort=3).data
    size = encoder.Prepared.predicted
    monkeypatch.setattr(encoder.Prepared, "predicted", property(lambda p: size.fget(p) - 5000))  # ... predicted far under
    calls = []

    def search_logged(job, predict):
        calls.append(predict)
        return search(job, predict)

    monkeypatch.setattr(encoder, "_search_file", search_logged)
    assert api.encode(cube, bpppb=0.2, effort=3).data == right
    assert calls == [True, False]  # the predicted search's file came out over the budget: searched again


def test_worker_thread_limit(monkeypatch):
    """hinercodec.parallel: a pool's workers get their share of the cores, a compiled step started
    inside limited(n) uses at most n threads, and the statistics are the same for any limit."""
    from hinercodec import parallel

    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 16)
    assert [parallel.share(w) for w in (1, 2, 3, 4, 32)] == [16, 8, 5, 4, 1]
    monkeypatch.setattr(bitstream, "THREADS", 7)
    seen = []
    with parallel.limited(2):
        seen.append(bitstream._threads())
        with parallel.limited(1):
            seen.append(wavelet._threads())
        seen.append(bitstream._threads())
    seen.append(bitstream._threads())
    assert seen == [2, 1, 2, 7]
    images, step = _case("real")
    pyr = _pyramid(images, step)
    ref = bitstream._stats(pyr, True)
    with parallel.limited(1):
        got = bitstream._stats(pyr, True)
    assert all(np.array_equal(a, b) for a, b in zip(got[:2], ref[:2])) and got[2:] == ref[2:]


def test_stream_refuses_too_few_escape_slots():
    """The compiled stream writes the escapes' low bits into buffers sized by the statistics' count
    of escape symbols, and refuses (ValueError) buffers too short for them, never writing past."""
    images, _ = _case("escapes")
    pyr = _pyramid(images, 1.0)
    section = bitstream.plan_section(pyr, True)
    assert section.escapes > 0
    stream, low, nbits = bitstream._fast_stream(pyr, True, section.slot, section.sign_slot, section.tables,
                                                section.total, section.escapes)
    assert low.size == nbits.size == section.escapes and int(nbits.sum()) == section.escape_bits
    with pytest.raises(ValueError):
        bitstream._fast_stream(pyr, True, section.slot, section.sign_slot, section.tables, section.total,
                               section.escapes - 1)


def test_dequantise_and_inverse_into_given_memory():
    """dequantise_pyramid(storage=) and wavelet.inverse(out=) (the encoder's exact candidates in a
    tile's idle buffers): the same values as in fresh memory, made in the memory given."""
    from hinercodec.codecs.transform import decoder

    images, step = _case("odd")
    pyr = _pyramid(images, step)
    steps = decoder.band_steps(step, len(pyr[1]))
    offsets = [3] * (len(pyr[1]) + 1)
    fresh = decoder.dequantise_pyramid(pyr, steps, offsets)
    storage = np.full(wavelet.pyramid_size(images.shape, len(pyr[1])), np.nan)
    given = decoder.dequantise_pyramid(pyr, steps, offsets, storage=storage)
    assert np.array_equal(given[0], fresh[0])
    for a, b in zip(given[1], fresh[1]):
        for x, y in zip(a, b):
            assert np.array_equal(x, y) and np.shares_memory(x, storage)
    out = np.full(images.shape, np.nan)
    back = wavelet.inverse(given, out)
    assert back is out and np.array_equal(back, wavelet.inverse(fresh))


def test_prepare_again_gives_the_same_file():
    """encoder.prepare_again (the file kept when a later re-aim's came out over the budget) makes
    the same payload as the Prepared the search returned, from the memo's analysis and plan, with
    the candidate remembered or evaluated afresh."""
    from hinercodec.codecs.transform import encoder

    images = _real_images(k=12, side=48).astype(np.float32)
    cube = (images - images.min()) / np.ptp(images)
    memo: dict = {}
    prepared, _, _ = encoder.encode_cube(cube, 8 * 3000, 3, memo=memo)
    key = (prepared.config["components"], prepared.config["step_code"])
    again = encoder.prepare_again(memo, *key)
    assert again.config == prepared.config and again.payload() == prepared.payload()
    memo["analysis"].cache.pop("evaluated")  # forgotten: evaluated again
    assert encoder.prepare_again(memo, *key).payload() == prepared.payload()


def test_analysis_keeps_no_float64_copy(monkeypatch):
    """An analysis of a cube over KEEP_VALUES_BYTES reads the cube it was given (no C x N float64
    copy kept: the largest array of a tile's encode); a smaller one keeps that copy. Either way its
    blocks are the weighted values in float64 (C-contiguous), and a projection made block by block
    is the same as one product of the whole."""
    from hinercodec.codecs.transform import encoder

    images = _real_images(k=8, side=40)
    cube = np.ascontiguousarray((images - images.min()) / np.ptp(images), np.float32)  # as a job's target
    weights = 2.0 ** (np.arange(8) / 8.0)
    whole = np.multiply(cube.reshape(8, -1), np.sqrt(weights)[:, None], dtype=np.float64)
    made = []
    for keep in (0, 1 << 30):
        monkeypatch.setattr(encoder, "KEEP_VALUES_BYTES", keep)
        a = encoder.analyse(cube, weights)
        made.append(a)
        copies = [v for v in vars(a).values() if isinstance(v, np.ndarray) and v.dtype == np.float64
                  and v.size >= cube.size]
        assert np.shares_memory(a.cube, cube) and len(copies) == (1 if keep else 0)
        for p0, p1 in ((0, a.pixels), (100, 357)):
            block = a.block(p0, p1)
            assert block.flags.c_contiguous and np.array_equal(block, whole[:, p0:p1])
        assert np.array_equal(a.basis[:, :3].T @ whole, np.concatenate(
            [a.basis[:, :3].T @ a.block(p, min(p + 500, a.pixels)) for p in range(0, a.pixels, 500)], axis=1))
    # made a row or a block at a time (no copy) or from the copy: the same mean, basis and constant bands
    assert all(np.array_equal(getattr(made[0], f), getattr(made[1], f)) for f in ("mean", "basis", "variance", "constant"))


def test_compiled_parametric_tables_match_the_reference():
    """bitstream.param_freqs (compiled) gives the integers of param_freqs_reference (Python) for
    every kind of table: sparse and dense, short and with escape classes, signed and unsigned,
    and None at the same parameters."""
    if not bitstream.FAST:
        pytest.skip("no compiled coder")
    bitstream.param_freqs.cache_clear()
    for a in (0, 1, 15, 16, 17, 100, 200, 254, 255):
        for b in (0, 1, 2, 127, 128, 200, 250, 254, 255):
            for top in (0, 1, 2, 30, 31, 32, 50, bitstream.ALPHABET - 1):
                for unsigned in (False, True):
                    got = bitstream.param_freqs(a, b, top, unsigned)
                    ref = bitstream.param_freqs_reference(a, b, top, unsigned)
                    assert (got is None) == (ref is None), (a, b, top, unsigned)
                    if ref is not None:
                        assert np.array_equal(got, ref), (a, b, top, unsigned)
    assert bitstream.param_freqs(256, 0, 5) is None and bitstream.param_freqs(0, 0, bitstream.ALPHABET) is None


def test_grown_pyramid_is_the_pyramid_made_whole(monkeypatch):
    """A small analysis's pyramid grown across K (encoder._grown_pyramid: up the ladder one and
    several rungs at a time, back down, a single added component) holds the values of the pyramid
    of those K components made whole, bit for bit."""
    from hinercodec.codecs.transform import encoder

    images = _real_images(k=12, side=40)
    cube = np.ascontiguousarray((images - images.min()) / np.ptp(images), np.float32)

    def whole(k):
        monkeypatch.setattr(encoder, "GROWN_BYTES", 0)
        a = encoder.analyse(cube)
        return encoder._pyramid(a, k)

    a = encoder.analyse(cube)
    for k in (1, 2, 3, 8, 5, 12, 4, 11):
        monkeypatch.setattr(encoder, "GROWN_BYTES", 1 << 26)
        grown = encoder._pyramid(a, k)
        assert "grown" in a.cache
        made = whole(k)
        assert np.array_equal(grown[0], made[0]) and grown[0].flags.c_contiguous
        for g, m in zip(grown[1], made[1]):
            assert all(np.array_equal(x, y) and x.flags.c_contiguous for x, y in zip(g, m))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_batched_quantiser_matches_band_by_band(monkeypatch, threads):
    """quantise_errors with every band quantised in one compiled call (bitstream.fast_quantise_bands,
    the components shared among threads) against the compiled quantiser called band by band
    (quantise_band) and the group offsets worked out here: the same integers and the same errors,
    bit for bit, into a given buffer and into fresh memory."""
    from hinercodec.codecs.transform import encoder
    from hinercodec.codecs.transform.decoder import band_steps

    rng = np.random.default_rng(3)
    pyr = wavelet.forward(rng.laplace(scale=30.0, size=(5, 300, 230)), 4)  # over the threads' threshold
    steps = band_steps(0.8, 4)
    monkeypatch.setattr(bitstream, "THREADS", threads)
    batched = encoder.quantise_errors(pyr, steps, 0.35, np.empty(5 * 300 * 230 + 7, np.int64))
    fresh = encoder.quantise_errors(pyr, steps, 0.35)
    groups = [[pyr[0]]] + [list(b) for b in pyr[1]]
    k = 5
    err = np.zeros(k)
    ref_ints = []
    for bands, s in zip(groups, [steps[0]] + list(steps[1])):
        stats = np.zeros((k, 4))
        qs = []
        for band in bands:
            q, st = encoder.quantise_band(band, s, 0.35)
            qs.append(q)
            stats += st
        zero_sq, nz, sf, sf2 = stats.T
        den = float(nz.sum())
        o = 0.0 if den == 0 else float(np.clip(round(encoder.OFFSET_RESOLUTION * float(sf.sum()) / den),
                                               -encoder.OFFSET_RESOLUTION // 2,
                                               encoder.OFFSET_RESOLUTION // 2)) / encoder.OFFSET_RESOLUTION
        err += zero_sq + sf2 - 2.0 * o * sf + nz * o * o
        ref_ints.append(qs)
    for ints, e in (batched, fresh):
        assert np.array_equal(e, err)
        assert np.array_equal(ints[0], ref_ints[0][0])
        assert all(np.array_equal(x, y) for level, ref in zip(ints[1], ref_ints[1:]) for x, y in zip(level, ref))


def test_step_code_hints_change_no_search():
    """encoder.code_hint only moves fit_code's first probe: a search given the codes of an earlier
    search (another pass's) finds the same candidate as one without them, with fewer probes."""
    from hinercodec.codecs.transform import encoder

    images = _real_images(k=24, side=40)
    cube = np.ascontiguousarray((images - images.min()) / np.ptp(images), np.float32)
    budget = 0.6 * cube.size
    counts = []
    found = []
    codes: dict = {}
    for memory in (None, codes, codes):
        a = encoder.analyse(cube)
        plain = encoder._fits
        n = [0]

        def counting(*args, **kwargs):
            n[0] += 1
            return plain(*args, **kwargs)

        encoder._fits = counting
        try:
            cand = encoder.search(a, budget, codes=memory)
        finally:
            encoder._fits = plain
        counts.append(n[0])
        found.append((cand.k, cand.code, cand.bits))
    assert found[0] == found[1] == found[2]
    assert counts[2] < counts[0]
    assert encoder.code_hint(16, [(8, 500), (10, 480)], {}, None) < 480  # extrapolated down the ladder
    assert encoder.code_hint(16, [(10, 481)], {10: 480, 16: 450}, None) == 451  # the earlier code, moved
    assert encoder.first_code(8 * 1000, 1000) > encoder.first_code(1000, 1000) > encoder.first_code(100, 1000)
    assert encoder.first_code(0.0, 1000) == 0


def test_fit_code_finds_the_same_code_from_any_start():
    """fit_code's probes (the first at the hint, the second where the learnt slope puts the budget's
    crossing) decide only its cost: from any first probe and any slope it finds the same finest
    code that fits the budget."""
    from hinercodec.codecs.transform import encoder

    images = _real_images(k=12, side=40)
    cube = np.ascontiguousarray((images - images.min()) / np.ptp(images), np.float32)
    budget = 0.5 * cube.size
    ref = encoder.fit_code(encoder.analyse(cube), 8, budget, 0.35)
    assert ref is not None
    for hint in (0, ref.code - 9, ref.code - 1, ref.code, ref.code + 1, ref.code + 7, 4 * ref.code):
        for slope in (encoder.SLOPE_RANGE[0], encoder.LOG_SLOPE, encoder.SLOPE_RANGE[1]):
            a = encoder.analyse(cube)
            a.cache["slope"] = slope
            assert encoder.fit_code(a, 8, budget, 0.35, hint).code == ref.code


def test_first_k_start_changes_no_search():
    """encoder.first_k only moves where the first K climb starts: on a real cube whose score over K
    has one peak, a search from it finds the same K, code and runner-up as one from K = 8."""
    from hinercodec.codecs.transform import encoder

    images = _real_images(k=48, side=40)
    cube = np.ascontiguousarray((images - images.min()) / np.ptp(images), np.float32)
    c, h, w = cube.shape
    for per_value in (0.3, 0.9):
        budget = per_value * cube.size
        start = encoder.first_k(budget, c, h * w)
        assert start > 8
        runs = []
        for begin in (None, start):
            second: list = []
            cand = encoder.search(encoder.analyse(cube), budget, start=begin, runner_up=second)
            runs.append((cand.k, cand.code, [(r.k, r.code) for r in second]))
        assert runs[0] == runs[1]
    assert encoder.first_k(0.1 * 1000 * 200, 200, 1000) == 8
    assert encoder.first_k(0.8 * 1000 * 200, 200, 1000) == encoder.FIRST_K_MOST
    assert encoder.first_k(0.8 * 1000 * 20, 20, 1000) == 16


def test_in_blocks_keeps_order_and_limits():
    """parallel.in_blocks: the results in the order of the starts, each call made under a limit of one
    thread, and no threads at all where the caller's limit is one."""
    import threading

    from hinercodec import parallel

    seen = []

    def call(s):
        seen.append((threading.current_thread().name, parallel.limit()))
        return s * s

    assert list(parallel.in_blocks(call, range(40))) == [s * s for s in range(40)]
    assert {limit for _, limit in seen} == {1}
    seen.clear()
    with parallel.limited(1):
        assert list(parallel.in_blocks(call, [3, 1, 2])) == [9, 1, 4]
    assert {name for name, _ in seen} == {threading.current_thread().name}


def test_compiled_estimate_floors_rare_symbols_alike():
    """A context where nearly every symbol is one value (a large image's coarse subbands): its
    explicit table cannot give the rare symbols less than 2**-12, so the estimate charges the
    common one what those floors take (bitstream._floored_entropy); the compiled estimate the same."""
    for counts, skewed in (([1178814, 1061, 23, 1], True), ([2366302, 1610, 12], True), ([500000, 3, 2, 1, 1], True),
                           ([9000, 40, 3], False)):
        h = np.zeros(bitstream.ALPHABET, np.int64)
        h[[0, 1, 3, 5, 7][:len(counts)]] = counts
        table = bitstream.rans.build_table(h, bitstream.PRECISION)
        coded = bitstream.rans.coded_bits(table, h)
        used = h[h > 0]
        floored = bitstream._floored_entropy(used, int(used.sum()))
        assert floored >= bitstream._entropy_bits(h) - 1e-6
        assert abs(floored - coded) < 0.01 * coded + 1
        if skewed:  # what the plain entropy misses: 4-5 % of the first two, 80 % of the third's 789 bits
            assert bitstream._entropy_bits(h) < 0.97 * coded
        hist = np.zeros((1 + 8 * 3 * 12, bitstream.ALPHABET), np.int64)
        hist[5] = h
        exact = bitstream.plan_tables(hist, True)[3]
        est, _ = bitstream._fast.estimate(hist, np.zeros((bitstream.N_SIGN_CONTEXTS, 2), np.int64), 0, True)
        assert abs(est - (8.0 + 24.0) - exact) <= 1e-9 * exact


@pytest.mark.parametrize("name", ["samson", "houston", "pavia", "cave"])
def test_size_estimate_is_the_section_and_side_bytes(name):
    """The search's estimates of a coefficient section (estimate_bits: tables, context list, stream
    framing) and of the side information (estimate_vector_bits) are what pack() and pack_vectors()
    write, to within half a percent and two percent on real scenes at the usual steps: the encoder's
    first file lands at its budget without a second search (encoder.FIRST_AIM)."""
    from hinercodec.codecs.transform import encoder
    from hinercodec.cube import normalised
    from hinercodec.formats.cubeio import read_cube

    file = {"samson": "samson.mat", "houston": "houston2018_crop.mat", "pavia": "pavia_centre_crop_v73.mat",
            "cave": "cave_balloons.h5"}[name]
    if not (DATA / file).is_file():
        pytest.skip(f"{DATA / file} not found")
    cube = read_cube(DATA / file).data[:64, :64].astype(np.float64)
    lo, hi = cube.min(axis=(0, 1)), cube.max(axis=(0, 1))
    y = normalised(cube, lo, np.where(hi > lo, hi - lo, 1.0))
    a = encoder.analyse(y)
    for k, code in ((4, 300), (12, 380), (12, 440)):
        cand = encoder.evaluate(a, k, code, 0.35)
        ints, _, b_int, _, m_int, _, _ = cand.parts
        data = bitstream.pack(ints, encoder.SIGNS)
        assert abs(bitstream.estimate_bits(ints, encoder.SIGNS) / (8 * len(data)) - 1) < 0.005 + 64 / (8 * len(data))
        side = encoder._side_vectors(b_int, m_int)
        coded = 8 * len(bitstream.pack_vectors(side))
        assert abs(bitstream.estimate_vector_bits(side) / coded - 1) < 0.02 + 32 / coded


def test_weighted_analysis_from_moments():
    """plan_cube's passes scale one cube's moments (encoder.moments) by their band weights instead of
    measuring the weighted cube again: the same mean, basis and variances as the weighted cube's own,
    with and without a nodata mask."""
    from hinercodec.codecs.transform import encoder

    rng = np.random.default_rng(3)
    y = np.abs(rng.normal(size=(6, 30, 41)).cumsum(axis=0)).astype(np.float32)
    w = 2.0 ** rng.uniform(-3, 3, 6)
    for valid in (None, rng.random((30, 41)) > 0.3):
        a = encoder.analyse(y, w, valid, encoder.moments(y, valid))
        x = (y.reshape(6, -1).astype(np.float64) * np.sqrt(w)[:, None])
        x = x if valid is None else x[:, valid.reshape(-1)]
        var, vec = np.linalg.eigh(np.cov(x, bias=True))
        assert np.allclose(a.mean, x.mean(axis=1), rtol=1e-12, atol=0)
        assert np.allclose(a.variance, var[::-1], rtol=1e-9, atol=1e-12)
        assert np.allclose(np.abs(a.basis.T @ vec[:, ::-1]), np.eye(6), atol=1e-6)


def test_pixel_blocks_share_the_cores():
    """encoder.block_size: blocks of at most `most` pixels, an even count from 2 * MIN_BLOCK pixels up
    (a 95 x 95 image's 9025 pixels in two blocks of 4513 and 4512, not 8192 and 833), one size but the last."""
    from hinercodec.codecs.transform.encoder import ERROR_CHUNK, block_size

    assert block_size(9025, ERROR_CHUNK) == 4513
    assert block_size(1000, ERROR_CHUNK) == 1000 and block_size(1, ERROR_CHUNK) == 1
    for n in (2048, 5000, 8193, 16384, 100000, 262144, 2048 * 2560):
        size = block_size(n, ERROR_CHUNK)
        count = -(-n // size)
        assert size <= ERROR_CHUNK and count % 2 == 0 and n - (count - 1) * size > 0
