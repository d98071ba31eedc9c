"""The transform model: CDF 9/7 wavelet, the subband coder (property tests, damage), the stored
TENS coder, and encode/decode round trips of real scenes through the public API."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hinercodec import api
from hinercodec.codecs.transform import bitstream as subbands
from hinercodec.codecs.transform import decoder as transform_decoder
from hinercodec.codecs.transform import encoder as transform
from hinercodec.codecs.transform import wavelet
from hinercodec.codecs.transform.decoder import TransformDecoder
from hinercodec.errors import CorruptFileError, UnsupportedFileError
from hinercodec.formats import tensors
from hinercodec.formats.cubeio import read_cube as _read_cube
from hinercodec.metrics import distortion

from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def read_cube(path: Path):
    """The shared scene, or a skip with the reason when ../shared/data is absent."""
    if not Path(path).is_file():
        pytest.skip(f"{path} not found (the shared real scenes are needed here)")
    return _read_cube(path)


# ---------------------------------------------------------------- wavelet

@pytest.mark.parametrize("h,w", [(95, 95), (128, 100), (7, 9), (1, 5), (2, 3), (33, 64)])
def test_wavelet_perfect_reconstruction(h: int, w: int) -> None:
    x = np.random.default_rng(h * w).normal(size=(3, h, w))
    levels = max(1, wavelet.levels_for(h, w)) if min(h, w) > 1 else 1
    pyr = wavelet.forward(x, levels)
    (lh, lw), det = wavelet.shapes(h, w, levels)
    assert pyr[0].shape == (3, lh, lw)
    assert [tuple(b.shape[1:] for b in d) for d in pyr[1]] == det
    np.testing.assert_allclose(wavelet.inverse(pyr), x, atol=1e-12)


@pytest.mark.slow
def test_wavelet_is_near_orthonormal() -> None:
    """Unit synthesis gains (within 10 %) make one global step right for every subband."""
    ll, det = wavelet.gains(5)
    assert all(0.9 < g < 1.1 for g in [ll, *det])
    for levels in (1, 3, 8):
        m_ll, m_det = wavelet.measured_gains(levels)
        assert wavelet.gains(levels) == (round(m_ll, 6), [round(g, 6) for g in m_det])
    x = np.random.default_rng(0).normal(size=(1, 64, 64))
    pyr = wavelet.forward(x, 3)
    energy = (pyr[0] ** 2).sum() + sum((b ** 2).sum() for d in pyr[1] for b in d)
    assert abs(energy / (x ** 2).sum() - 1) < 0.1


# ---------------------------------------------------------------- subband coder

def _random_pyramid(rng: np.random.Generator, k: int, h: int, w: int, scale: float) -> tuple:
    levels = wavelet.levels_for(h, w)
    (lh, lw), det = wavelet.shapes(h, w, levels)
    ll = np.rint(rng.normal(size=(k, lh, lw)) * 50 * scale).astype(np.int64)
    details = [tuple(np.rint(rng.laplace(size=(k,) + s) * scale / (l + 1)).astype(np.int64) for s in shapes)
               for l, shapes in enumerate(det)]
    return (ll, details), levels


def _same(a: tuple, b: tuple) -> bool:
    return (a[0] == b[0]).all() and all((x == y).all() for d, e in zip(a[1], b[1]) for x, y in zip(d, e))


@pytest.mark.parametrize("signs", [False, True])  # the "transform" (0.3) and "transform2" sections
@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 4), h=st.integers(1, 40), w=st.integers(1, 40), scale=st.sampled_from([0.0, 0.3, 1.0, 20.0]),
       seed=st.integers(0, 2**16))
def test_subbands_round_trip(signs: bool, k: int, h: int, w: int, scale: float, seed: int) -> None:
    pyr, levels = _random_pyramid(np.random.default_rng(seed), k, h, w, scale)
    data = subbands.pack(pyr, signs)
    assert _same(subbands.unpack(data, k, h, w, levels, signs), pyr)
    assert abs(8 * len(data) - subbands.estimate_bits(pyr, signs)) < 0.1 * 8 * len(data) + 400


@pytest.mark.parametrize("signs", [False, True])
def test_subbands_huge_values_escape(signs: bool) -> None:
    pyr, levels = _random_pyramid(np.random.default_rng(1), 2, 16, 16, 1.0)
    pyr[0][0, 0, 0] = (1 << 39) + 12345
    pyr[1][0][1][1, 2, 3] = -(1 << 30)
    assert _same(subbands.unpack(subbands.pack(pyr, signs), 2, 16, 16, levels, signs), pyr)
    pyr[0][0, 0, 0] = 1 << 41
    with pytest.raises(ValueError):
        subbands.pack(pyr, signs)


def test_sign_contexts_pay_where_signs_are_predictable() -> None:
    """Coefficients whose signs follow the pattern the sign contexts expect (opposite along a
    band's high-pass direction) cost fewer bytes with them; random signs cost at most a few bytes."""
    rng = np.random.default_rng(7)
    pyr, levels = _random_pyramid(rng, 2, 64, 64, 3.0)
    ll, det = pyr
    patterned = []
    for lev in det:
        bands = []
        for o, band in enumerate(lev):
            alt = np.where((np.arange(band.shape[2]) % 2 == 0), 1, -1)[None, None, :] if o == 0 else \
                np.where((np.arange(band.shape[1]) % 2 == 0), 1, -1)[None, :, None]
            bands.append(np.abs(band) * alt)
        patterned.append(tuple(bands))
    assert len(subbands.pack((ll, patterned), True)) < 0.95 * len(subbands.pack((ll, patterned), False))
    assert len(subbands.pack(pyr, True)) <= len(subbands.pack(pyr, False)) + 8


@pytest.mark.parametrize("signs", [False, True])
def test_subbands_damage_is_reported(signs: bool) -> None:
    pyr, levels = _random_pyramid(np.random.default_rng(2), 3, 32, 24, 1.0)
    data = subbands.pack(pyr, signs)
    for bad in (data[:-1], data + b"\0", data[: len(data) // 2], bytes([data[0] ^ 0x7F]) + data[1:]):
        with pytest.raises(CorruptFileError):
            subbands.unpack(bad, 3, 32, 24, levels, signs)
    with pytest.raises(CorruptFileError):
        subbands.unpack(data, 3, 32, 24, subbands.MAX_LEVELS + 1, signs)
    rng = np.random.default_rng(3)
    for _ in range(200):  # random byte flips: a clean error or (rarely) other valid data, never a crash
        flipped = bytearray(data)
        flipped[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        try:
            subbands.unpack(bytes(flipped), 3, 32, 24, levels, signs)
        except CorruptFileError:
            pass

# random byte flips: a clean error or (rarely) other valid data, never a crash
        flipped = bytearray(data)
        flipped[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        try:
            subbands.unpack(bytes(flipped), 3, 32, 24, levels)
        except CorruptFileError:
            pass


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(1, 60), min_size=1, max_size=5), seed=st.integers(0, 2**16))
def test_vectors_round_trip(lengths: list, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = [np.rint(rng.laplace(size=n) * rng.choice([0.1, 3, 1e6])).astype(np.int64) for n in lengths]
    data = subbands.pack_vectors(vectors)
    out, pos = subbands.unpack_vectors(data + b"tail", 0, lengths)
    assert pos == len(data)
    assert all((a == b).all() for a, b in zip(out, vectors))


def test_stored_tensor_coder() -> None:
    payload = np.frombuffer(np.random.default_rng(0).bytes(500), np.uint8)
    t = tensors.QuantTensor(shape=(500,), bits=8, symbols=payload.astype(np.int64), offset=np.zeros(1, np.float32),
                            step=np.ones(1, np.float32), name="payload")
    data = tensors.pack_tensors([t])
    assert data[0] == tensors.CODER_STORED and len(data) < 500 + 16
    (back,) = tensors.unpack_tensors(data)
    assert (back.symbols == payload).all()
    with pytest.raises(CorruptFileError):
        tensors.unpack_tensors(data[:-1])
    with pytest.raises(UnsupportedFileError):
        tensors.unpack_tensors(bytes([7]) + data[1:])


# ---------------------------------------------------------------- the model end to end

@pytest.fixture(scope="module")
def houston() -> np.ndarray:
    return read_cube(DATA / "houston2018_crop.mat").data[:64, :80]


@pytest.fixture(scope="module")
def encoded(houston: np.ndarray) -> api.EncodeResult:
    return api.encode(houston, options=api.EncodeOptions(model="transform", bpppb=0.3, effort=1))


def test_round_trip_meets_rate_and_quality(houston: np.ndarray, encoded: api.EncodeResult) -> None:
    h, w, c = houston.shape
    assert 0.9 * 0.3 <= 8 * len(encoded.data) / (h * w * c) <= 0.3
    decoded = api.decode(encoded.data)
    assert decoded.dtype == houston.dtype and decoded.shape == houston.shape
    assert distortion(houston, decoded).psnr_band == pytest.approx(encoded.psnr_band)
    assert encoded.psnr_band > 40.0  # a real scene crop at 0.3 bpppb (46 dB when written)
    assert api.info(encoded.data)["model"]["model"] == "transform2"


def test_same_input_same_bytes(houston: np.ndarray, encoded: api.EncodeResult) -> None:
    again = api.encode(houston, options=api.EncodeOptions(model="transform", bpppb=0.3, effort=1))
    assert again.data == encoded.data


def test_bands_windows_and_interp(encoded: api.EncodeResult) -> None:
    dec = api.Decoder(encoded.data)
    full = dec.bands()
    np.testing.assert_array_equal(dec.bands([3, 7]), full[:, :, [3, 7]])
    np.testing.assert_array_equal(dec.bands([5], window=(10, 30, 20, 50)), full[10:30, 20:50, [5]])
    t = dec.file.band_positions()
    at = dec.at(t[:4])  # exactly the coded bands at their own positions
    np.testing.assert_array_equal(at, full[:, :, :4])
    # Continuous in wavelength: a fine sweep between two bands moves in small steps.
    sweep = dec.at(np.linspace(t[10], t[11], 9)).astype(np.float64)
    steps = np.abs(np.diff(sweep, axis=2)).max()
    assert steps <= np.abs(full[:, :, 11].astype(np.float64) - full[:, :, 10]).max() / 2 + 2


def test_damaged_payload_is_a_clean_error(encoded: api.EncodeResult) -> None:
    from hinercodec.formats.hnrfile import pack, unpack

    f = unpack(encoded.data)
    payload = f.payload
    assert payload is not None and not f.tensors  # the payload sits in CODE (format 1.1)
    for cut in (1, len(payload) // 2):
        f.payload = payload[cut:]
        with pytest.raises(CorruptFileError):
            api.decode(pack(f))
    f.payload = payload
    f.model_config = {**f.model_config, "components": f.model_config["components"] + 1}
    with pytest.raises(CorruptFileError):
        api.decode(pack(f))
    f.model_config = {**f.model_config, "components": f.model_config["components"] - 1,
                      "offsets": [33] * len(f.model_config["offsets"])}
    with pytest.raises(CorruptFileError, match="out of range"):  # HNR.md: offsets -32..32
        api.decode(pack(f))


def test_akima_bands_exact_at_coded_positions_and_smooth_between() -> None:
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 3, 4))
    basis = rng.normal(size=(6, 2))
    pos = np.array([0.0, 0.1, 0.3, 0.35, 0.8, 1.0])
    units = (np.zeros(6), np.ones(6))
    dec = TransformDecoder.from_parts(images, basis, np.linspace(0, 1, 6), pos, units)
    unclamped = np.einsum("ck,khw->chw", basis, images) + np.linspace(0, 1, 6)[:, None, None]
    np.testing.assert_allclose(dec.render(pos), np.clip(unclamped, 0, 1), atol=1e-12)
    fine = dec.render(np.linspace(0, 1, 801))
    assert np.abs(np.diff(fine, axis=0)).max() < 0.1  # continuous: small steps for small moves
    # Akima reproduces a straight line: a basis linear in t gives bands linear in t.
    images = rng.uniform(0.1, 0.4, size=(2, 3, 4))
    dec = TransformDecoder.from_parts(images, np.stack([np.linspace(0, 1, 6), np.linspace(1, -1, 6)], axis=1) * 0.5,
                                      np.full(6, 0.5), np.linspace(0, 1, 6), units)
    mid = dec.render(np.array([0.5]))[0]
    np.testing.assert_allclose(mid, 0.5 + 0.25 * images[0], atol=1e-12)


def test_interpolation_is_in_the_cube_units() -> None:
    """Bands with very different ranges (raw sensor counts): a spectrum that is a straight line in
    the cube's units comes back on that line between coded bands, once the decoder's offset and
    scale (linear in t) are applied; not the line of each band's own [0, 1] scale."""
    rng = np.random.default_rng(1)
    a = rng.uniform(0.2, 0.8, size=(1, 2, 3))
    pos = np.array([0.0, 0.3, 0.6, 1.0])
    offset, scale = np.array([100.0, 40.0, 900.0, 10.0]), np.array([50.0, 800.0, 200.0, 3000.0])
    slope_units = 1000.0 * pos + 120.0  # value = slope_units(t) * A: a line in t for every pixel
    # normalised band c = (slope_c A - offset_c) / scale_c, kept inside [0, 1] by these ranges
    dec = TransformDecoder.from_parts(a, slope_units[:, None] / scale[:, None], -offset / scale, pos, (offset, scale))
    t = np.array([0.15, 0.45, 0.8])
    rows = np.stack([dec.row(v) for v in t])
    y = rows[:, :1, None] * a + rows[:, 1, None, None]  # unclamped, as the interpolation defines it
    o_t, s_t = np.interp(t, pos, offset), np.interp(t, pos, scale)
    decoded = o_t[:, None, None] + s_t[:, None, None] * y[:, 0] if y.ndim == 4 else o_t[:, None, None] + s_t[:, None, None] * y
    expected = (1000.0 * t + 120.0)[:, None, None] * a[0][None]
    np.testing.assert_allclose(decoded, expected, rtol=1e-9)


def test_higher_effort_is_never_worse(houston: np.ndarray) -> None:
    """--effort 3 searches a superset of what --effort 1 tries (re-weighting passes on top of the
    same first pass): its file scores at least as well. (What it costs in time is measured by the
    benchmarks, never by a timed unit test.)"""
    cube = houston[:48, :48]
    low = api.encode(cube, options=api.EncodeOptions(model="transform", bpppb=0.3, effort=1))
    high = api.encode(cube, options=api.EncodeOptions(model="transform", bpppb=0.3, effort=3))
    assert high.stats["encoder_psnr_band"] >= low.stats["encoder_psnr_band"]
    assert high.psnr_band >= low.psnr_band


def test_rate_too_low_is_a_request_error(houston: np.ndarray) -> None:
    from hinercodec.errors import RequestError

    with pytest.raises(RequestError):
        api.encode(houston[:16, :16], options=api.EncodeOptions(model="transform", bpppb=0.01))


@pytest.mark.parametrize("side", [8, 12])
def test_tiny_cube_meets_every_rate_above_its_smallest_file(houston: np.ndarray, side: int) -> None:
    """A cube so small that its side information is most of the file: the error at a rate too low
    names the smallest rate, and every rate above it lands in the window (the K search goes down
    through K that do not fit to one that does; the default codec's high rates too)."""
    import re

    from hinercodec.errors import RequestError

    cube = houston[:side, :side]
    with pytest.raises(RequestError, match="too low") as info:
        api.encode(cube, options=api.EncodeOptions(model="transform", bpppb=0.05))
    smallest = float(re.search(r"about ([0-9.]+) bpppb", str(info.value)).group(1))
    for rate in sorted({round(1.03 * smallest, 3), max(1.0, 1.03 * smallest), 1.5 * smallest}):
        r = api.encode(cube, options=api.EncodeOptions(model="transform", bpppb=rate))
        assert 0.9 * rate <= r.bpppb <= rate


def test_encoder_estimate_matches_file(houston: np.ndarray) -> None:
    y = houston.astype(np.float64).transpose(2, 0, 1)
    y = (y - y.min(axis=(1, 2), keepdims=True)) / np.ptp(y, axis=(1, 2), keepdims=True)
    a = transform.analyse(y)
    cand = transform.finalise(a, transform.fit_code(a, 6, 8 * 4000, 0.35), 8 * 4000, 0.35)
    config, payload = transform.package(cand, np.zeros(y.shape[0], np.int64), *y.shape[1:])
    assert abs(8 * len(payload) - cand.bits) < 0.03 * 8 * len(payload) + 200
    images, basis, mean = transform_decoder.decode_payload(config, payload)
    assert images.shape == (6,) + y.shape[1:] and basis.shape == (y.shape[0], 6)


SCENES = {  # file, dtype; 40 x 48 crops from the interior, every reader and sample type
    "samson": ("samson.mat", np.float32),
    "houston": ("houston2018_crop.mat", np.uint16),
    "pavia": ("pavia_centre_crop_v73.mat", np.float64),
    "muufl": ("muufl_crop_v73.mat", np.float32),
    "cave": ("cave_balloons.h5", np.uint16),
}


@pytest.mark.parametrize("name", list(SCENES))
@pytest.mark.parametrize("bpppb", [0.2, 1.0])
def test_every_scene_round_trip(name: str, bpppb: float) -> None:
    fname, dtype = SCENES[name]
    cube = read_cube(DATA / fname)
    crop = np.ascontiguousarray(cube.data[20:60, 10:58])
    assert crop.dtype == dtype
    result = api.encode(crop, cube.wavelengths, api.EncodeOptions(bpppb=bpppb, effort=1))
    h, w, c = crop.shape
    rate = 8 * len(result.data) / (h * w * c)
    assert rate <= bpppb and (rate >= 0.9 * bpppb or result.stats.get("below_target"))
    out = api.decode(result.data)
    assert out.dtype == dtype and out.shape == crop.shape
    lo, hi = crop.min(axis=(0, 1)).astype(np.float64), crop.max(axis=(0, 1)).astype(np.float64)
    tol = 2.0 ** -7 * (np.abs(lo) + hi - lo) + 1e-6 * max(float(hi.max() - lo.min()), 1.0)  # BNDS rounding
    assert (out >= lo - tol).all() and (out <= hi + tol).all()
    assert distortion(crop, out).psnr_band == pytest.approx(result.psnr_band, abs=1e-9)
    assert result.psnr_band > (20.0 if bpppb < 0.5 else 28.0)  # tiny files (1-5 KB): much of them header


def test_optimise_chooses_the_metric(houston: np.ndarray) -> None:
    """psnr_band (default) weights bands ~1 / their error; psnr_global keeps the plain MSE: each
    wins on its own figure, and anything else is refused."""
    from hinercodec.errors import UsageError

    cube = houston[:48, :64]
    band = api.encode(cube, options=api.EncodeOptions(bpppb=0.3, effort=2))
    glob = api.encode(cube, options=api.EncodeOptions(bpppb=0.3, effort=2, optimise="psnr_global"))
    assert band.psnr_band > glob.psnr_band - 0.05
    assert glob.stats["psnr_global"] > band.stats["psnr_global"] - 0.05
    with pytest.raises(UsageError):
        api.encode(cube, options=api.EncodeOptions(bpppb=0.3, optimise="sam"))


@pytest.mark.parametrize("bands", [1, 2, 6])
def test_few_bands_and_constant_bands(bands: int) -> None:
    """One band (a K ladder of one), two bands, and a constant band (decoded exactly from BNDS)."""
    rng = np.random.default_rng(bands)
    cube = rng.random((32, 32, bands)).astype(np.float32)
    if bands == 6:
        cube[:, :, 2] = 0.25
    result = api.encode(cube, options=api.EncodeOptions(bpppb=12.0, effort=1))
    out = api.decode(result.data)
    assert out.shape == cube.shape and 8 * len(result.data) / cube.size <= 12.0
    assert distortion(cube, out).psnr_band > 40.0
    if bands == 6:
        assert (out[:, :, 2] == np.float32(0.25)).all()


# A 16 x 16 x 4 uint16 cube coded by hinerc 0.3.0 (effort 1, 6 bpppb): readers must keep decoding
# these bytes to the same cube (up to float rounding of the last integer), else the format changed.
GOLDEN_TRANSFORM = bytes.fromhex(
    "89484e520d0a1a0a100000004848445201000300100000001000000004000000662899e1230000006d65746128b52ffd"
    "201ad100007b22656e636f646572223a2268696e65726320302e332e30227dba1bbce229000000424e445328b52ffd20"
    "2001010000006f4400c06e4400806f4400806f440000b24200001e430000614300809643fd91c1261100000057415645"
    "010000000000207c400000000000c08240b4458387800000004d4f444c28b52ffd2097bd030032c81918706f0ee61bc0"
    "83048a350a84e3eadfa4a8441cd204a80a4317a17b27b6877a0e43b0e7069724e2d84f44b388dc0c039f771264fa3129"
    "7e0f7183ee31764fdd37c413434f42f7d1691e76e2e307230797275200a969a4eab1efa8e2a49f66ca53d8777b4cb915"
    "040086210ccfd8031c86d7a0f4722e4741ae01000054454e53020127a103000000000000803f28b0f2f91e1f003c3e00"
    "f0f83c3e0001e59338af17840f003b424b005fc9d57bcb6d896780260b69b9cbefbf057845ccb7c01100000000000800"
    "00000000060000000000c41000f005cb22122d06104b08144708c70200ff3f0100cfbea15ffd467adfb32490def85c3e"
    "08093d126ee4762afcfcd8404c269eea2b9a7f04da79f919cf9b53357cb95bdc0f09f4c5e918d44354d2cc1b1725baf9"
    "6d582fb1a8f5add7ce292ba8a4538cdbb96af8123b33bed8cdcd88c43310e1152cd7d5a1bdaa8bbb38c934a77d620751"
    "2758f086a232a295d09599c4576ba1b99330e55743ea2253903305d26007689b5a211a11a80c9002a883f66f44e87f89"
    "5dd66ebd0fee7ec2c9235394969c94a0c80b55c0606dc0f175e0782a5d582e962003e9dcffb7cedff147b6a4b98d7fe8"
    "0e03fc31a8d2f6a673d12bc8a27679718dde58f186c8e243d4c73c1eaee8da8af9e39533b712edaa4faca104486abc71"
    "0eefb2f98fd6b7ea7b20e36107d7d7b7aedfcaf4ae185fc45a9cb1400c5aefb829b25efc836931965dbae31c3576e420"
    "967bc2c5d4d3f0dac768f56859470df4ea5055009d4a8835a9eb7f0000000048454e44e707fe16")


@pytest.mark.slow
def test_tiled_transform_file_meets_its_rate() -> None:
    """Tiles of the transform model keep their payload stored (tile tensors have no names: the
    coder choice must not depend on them), so the tiled file lands in the rate window."""
    from hinercodec.formats import tiled

    cube = read_cube(DATA / "cave_balloons.h5")
    crop = np.ascontiguousarray(cube.data[:120, :150])
    result = api.encode(crop, cube.wavelengths, api.EncodeOptions(bpppb=0.4, tile=64, effort=1))
    rate = 8 * len(result.data) / crop.size
    assert 0.36 <= rate <= 0.4 and api.info(result.data)["format_version"] == "2.0"
    head, tiles = tiled.unpack_tiled(result.data)
    assert len(tiles) == 6 and all(len(t.tensors) == 1 and t.tensors[0].bits == 8 for t in tiles)
    assert distortion(crop, api.decode(result.data)).psnr_band == pytest.approx(result.psnr_band)


# Houston crop rows 40:56, columns 60:76, bands 10:14, wavelengths 450-600 nm, coded by hinerc 0.4.0
# (effort 1, 6 bpppb): the `transform2` section (signs with sign contexts). Same rule as above.
GOLDEN_TRANSFORM2 = bytes.fromhex(
    "89484e520d0a1a0a100000004848445201000300100000001000000004000000662899e1230000006d65746128b52ffd"
    "201ad100007b22656e636f646572223a2268696e65726320302e342e30227daac79c5029000000424e445328b52ffd20"
    "200101000080674500007e450080824500008345000030460000324600802b4600002c4674f31ca41100000057415645"
    "010000000000207c400000000000c08240b4458387820000004d4f444c28b52ffd2099cd0300c2081b18706f0ee61bc0"
    "83048a350a84e3eadfe42620ee690254852157a17b27b6877a06c4b0e7069724e2d84fc448e3d877e46618f87ce024c8"
    "f46352fc1ee206dd63ec9eba6f8827869e85eea3d33cec3c857dc7c70f460e2e4fa4500552d063df51c5493fcd94e7b0"
    "eff698722b03003c032ce0a00cb879d5a7706ea801000054454e530201279b03000000000000803f2cb0f2cf178cf100"
    "78fc478de2078fc4795e401e3f178c0d00de00400015f132f05c8900640511fcbe80881e000000000000000000040000"
    "000000000000000200000000000000000000c0401040f80aec2819c82117dc2329830f06e823c70100950200fd8f0500"
    "4a2f68fc513cd26c4165828b5cb6181c2ed961b92d6762cd164ccd7aec6f439fe46ab8ad447f8a8f9389fcfff3ef7a9f"
    "026afdb5aaf106661a638fd52f00b305da850416c755e5160a17c6f6a37a95879ef695f567a07235bb35dfe104a7dc95"
    "1426da454d16a896e985d8fb9b4e42ee4b722a87c58e3d3dfdbfd3cfb54ffec8a7eaad3d62fb64f81f6588e2ef211880"
    "6122e252c266c270a8db717a4af6e3536d3f023b54eaf63f9e786ec9827f5d3dcf46906268a2e71725da019040e1a520"
    "4f7af2d4675e6277cfe5efde91f15415bd047011fe0f322e89ceb3adc4289ece89bfa46b850a3612560d9cac639baf49"
    "b64cda33c139a3a5b252a66080d7de9853e89ac409941f7d5b48d9a6cc29465c562bc9befb9b5420cc2474ecce261321"
    "11a2e898a007f4a45c05d6616e7b4e62af7f208aaf15b60000000048454e44e707fe16")


GOLDEN = {  # file, model, its first 2 x 3 pixels, the sum of all its values
    "transform": (GOLDEN_TRANSFORM, [[[1001, 1032, 1035, 1000], [1011, 1033, 1029, 997], [1024, 1037, 1020, 980]],
                                     [[997, 1038, 1047, 1023], [1009, 1039, 1038, 999], [1021, 1043, 1031, 995]]], 1081199),
    "transform2": (GOLDEN_TRANSFORM2, [[[5902, 6035, 5864, 5758], [6068, 6197, 6017, 5905], [6710, 6850, 6653, 6540]],
                                       [[5976, 6099, 5916, 5802], [6436, 6566, 6371, 6254], [6710, 6833, 6622, 6497]]],
                   9773702),
}


@pytest.mark.parametrize("model", list(GOLDEN))
def test_golden_files_decode(model: str) -> None:
    data, expected, total = GOLDEN[model]
    info = api.info(data)
    assert info["model"]["model"] == model and info["model"]["components"] >= 1
    out = api.decode(data)
    assert out.shape == (16, 16, 4) and out.dtype == np.uint16
    assert np.abs(out[:2, :3].astype(np.int64) - np.array(expected)).max() <= 1
    assert abs(int(out.astype(np.int64).sum()) - total) <= 8
    np.testing.assert_allclose(api.Decoder(data).wavelengths, [450, 500, 550, 600])
    if model == "transform2":  # and it is that Houston crop, coded
        original = read_cube(DATA / "houston2018_crop.mat").data[40:56, 60:76, 10:14]
        assert np.abs(out.astype(np.int64) - original).max() < 200


# ---------------------------------------------------------------- nodata: the shape-adaptive wavelet

def _random_mask(rng, h, w):
    valid = rng.random((h, w)) > 0.35
    valid[h // 4:h // 2, :] = True  # long runs as well as isolated pixels
    return valid


@pytest.mark.parametrize("h, w, levels", [(37, 53, 3), (20, 9, 1), (64, 64, 6), (5, 7, 2), (1, 12, 0)])
def test_shape_adaptive_wavelet_is_critically_sampled_and_exact(h, w, levels):
    """One coefficient per data pixel, 0 elsewhere; the inverse gives the data pixels back; with
    every pixel valid it is the plain transform bit for bit."""
    rng = np.random.default_rng(h * w + levels)
    valid = _random_mask(rng, h, w)
    x = rng.normal(size=(3, h, w))
    pyr = wavelet.forward_masked(x, valid, levels)
    ll_mask, det_masks = wavelet.masks(valid, levels)
    assert int(ll_mask.sum()) + sum(int(m.sum()) for ms in det_masks for m in ms) == int(valid.sum())
    assert not pyr[0][:, ~ll_mask].any()
    assert all(not b[:, ~m].any() for bs, ms in zip(pyr[1], det_masks) for b, m in zip(bs, ms))
    back = wavelet.inverse_masked(pyr, valid)
    assert np.abs(back - x)[:, valid].max() < 1e-12 and not back[:, ~valid].any()
    full = np.ones((h, w), bool)
    plain, masked = wavelet.forward(x, levels), wavelet.forward_masked(x, full, levels)
    assert np.array_equal(plain[0], masked[0])
    assert all(np.array_equal(a, b) for pa, pb in zip(plain[1], masked[1]) for a, b in zip(pa, pb))
    assert np.array_equal(wavelet.inverse(plain), wavelet.inverse_masked(plain, full))


def _masked_int_pyramid(rng: np.random.Generator, images: np.ndarray) -> tuple:
    """(wavelet.masks, the rounded shape-adaptive pyramid, 3 levels) of images (K, h, w) over a
    random mask of their size, drawn after the images from the same generator."""
    valid = _random_mask(rng, *images.shape[1:])
    pyr = wavelet.forward_masked(images, valid, 3)
    ints = (np.rint(pyr[0]).astype(np.int64), [tuple(np.rint(b).astype(np.int64) for b in d) for d in pyr[1]])
    return wavelet.masks(valid, 3), ints


def test_coefficient_section_with_masks_round_trips():
    """pack/unpack of a pyramid coded at its mask's positions only (HNR.md "Nodata"), both signs modes;
    the estimate is within a few percent of the real size."""
    rng = np.random.default_rng(5)
    maps, ints = _masked_int_pyramid(rng, rng.normal(scale=20, size=(4, 30, 41)))
    for signs in (False, True):
        data = subbands.pack(ints, signs, maps)
        back = subbands.unpack(data, 4, 30, 41, 3, signs, maps)
        assert np.array_equal(back[0], ints[0])
        assert all(np.array_equal(a, b) for da, db in zip(back[1], ints[1]) for a, b in zip(da, db))
        assert abs(subbands.estimate_bits(ints, signs, coded=maps) / (8 * len(data)) - 1) < 0.05
        assert len(data) < len(subbands.pack(ints, signs))  # the nodata positions cost nothing


@pytest.mark.skipif(not subbands.FAST, reason="the compiled statistics are not built")
def test_masked_statistics_compiled_equal_the_walk(monkeypatch):
    """The compiled statistics of a whole pyramid less what its absent positions add (_absent) are
    exactly the statistics of the masked walk (the numpy reference)."""
    rng = np.random.default_rng(3)
    maps, ints = _masked_int_pyramid(rng, rng.laplace(scale=3, size=(5, 37, 29)))
    for signs in (False, True):
        fast = subbands._stats(ints, signs, maps)
        monkeypatch.setattr(subbands, "FAST", False)
        ref = subbands._stats(ints, signs, maps)
        monkeypatch.setattr(subbands, "FAST", True)
        assert all(np.array_equal(a, b) for a, b in zip(fast[:2], ref[:2])) and fast[2:] == ref[2:]


@pytest.mark.skipif(not subbands.FAST, reason="the compiled coder is not built")
def test_compiled_mix_and_quantiser_match_their_numpy_references() -> None:
    """_fast.mix against decoder.mix (bit for bit: HNR.md's operation order) and the search's
    compiled quantiser against its numpy fallback (same integers, same error sums)."""
    rng = np.random.default_rng(3)
    images, rows = rng.standard_normal((7, 33, 45)), rng.standard_normal((5, 8)) * 0.3
    out = np.empty((5, 33, 45))
    subbands.fast_mix(rows, images, out, (0, 33, 0, 45))
    assert np.array_equal(out, np.stack([transform_decoder.mix(r, images) for r in rows]))
    part = np.empty((5, 20, 11))
    subbands.fast_mix(rows, images, part, (5, 25, 30, 41))
    assert np.array_equal(part, np.stack([transform_decoder.mix(r, images[:, 5:25, 30:41]) for r in rows]))
    band = rng.standard_normal((3, 20, 30)) * 5
    fast_q, fast_s = transform.quantise_band(band, 0.7, 0.35)
    try:
        subbands.FAST = False
        ref_q, ref_s = transform.quantise_band(band, 0.7, 0.35)
    finally:
        subbands.FAST = True
    assert np.array_equal(fast_q, ref_q) and np.allclose(fast_s, ref_s, rtol=1e-12, atol=1e-9)
    pyr = wavelet.forward(rng.standard_normal((3, 37, 29)) * 40, 3)  # the file's quantiser (|c| / s)
    steps = transform_decoder.band_steps(0.37, 3)
    fast_ints = transform.quantise_pyramid(pyr, steps, 0.35)
    try:
        subbands.FAST = False
        ref_ints = transform.quantise_pyramid(pyr, steps, 0.35)
    finally:
        subbands.FAST = True
    assert _same(fast_ints[0], ref_ints[0]) and fast_ints[1] == ref_ints[1]


@pytest.mark.skipif(not subbands.FAST, reason="the compiled coder is not built")
def test_compiled_restore_matches_numpy() -> None:
    """cube.restore compiled and in numpy: the same values for every type it handles (ties to even)."""
    from hinercodec import cube

    rng = np.random.default_rng(5)
    for dtype in subbands.RESTORE_KINDS:
        for ydtype in (np.float32, np.float64):
            y = (rng.random((4, 6, 7)) * 1.2 - 0.1).astype(ydtype)
            y[0, 0, :4] = [0.5, 1.5, 2.5, -0.5]
            scale, offset = rng.random(4) * 70000 + 0.5, rng.standard_normal(4) * 100
            scale[0], offset[0] = 1.0, 0.0
            fast = cube.restore(y, offset, scale, dtype)
            try:
                subbands.FAST = False
                ref = cube.restore(y, offset, scale, dtype)
            finally:
                subbands.FAST = True
            assert fast.dtype == ref.dtype and np.array_equal(fast, ref)


def _unpack_or_error(data: bytes, shape: tuple, signs: bool, fast: bool):
    """unpack with the compiled walk or the numpy reference: the pyramid, or the CorruptFileError."""
    try:
        subbands.FAST = fast
        return subbands.unpack(data, *shape, signs)
    except CorruptFileError as exc:
        return exc
    finally:
        subbands.FAST = True


@pytest.mark.skipif(not subbands.FAST, reason="the compiled coder is not built")
@pytest.mark.parametrize("signs", [False, True])
@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 5), h=st.integers(1, 45), w=st.integers(1, 45), scale=st.sampled_from([0.0, 0.05, 1.0, 3000.0]),
       seed=st.integers(0, 2**16))
def test_compiled_unwalk_matches_the_numpy_walk(signs: bool, k: int, h: int, w: int, scale: float, seed: int) -> None:
    """_fast.unwalk (the decoder's compiled walk) against the numpy walk: the same pyramid from a
    section, and on damaged sections (truncated, a bit flipped) the same verdict: both the same
    pyramid, or both CorruptFileError."""
    rng = np.random.default_rng(seed)
    pyr, levels = _random_pyramid(rng, k, h, w, scale)
    data = subbands.pack(pyr, signs)
    shape = (k, h, w, levels)
    assert _same(_unpack_or_error(data, shape, signs, True), pyr)
    assert _same(_unpack_or_error(data, shape, signs, False), pyr)
    for trial in range(6):
        bad = bytearray(data)
        if trial % 2:
            bad = bad[:int(rng.integers(0, len(bad)))]
        else:
            bad[int(rng.integers(0, len(bad)))] ^= 1 << int(rng.integers(0, 8))
        fast, ref = (_unpack_or_error(bytes(bad), shape, signs, f) for f in (True, False))
        if isinstance(ref, CorruptFileError):
            assert isinstance(fast, CorruptFileError)
        else:
            assert not isinstance(fast, CorruptFileError) and _same(fast, ref)


@pytest.mark.skipif(not wavelet.FAST, reason="the compiled lifting is not built")
def test_compiled_lifting_same_bits_for_any_thread_count() -> None:
    """The compiled CDF 9/7 lifting split over lines or (one image) over columns by 1, 2 or 3 threads,
    and the numpy reference: the same pyramid and the same images back, bit for bit."""
    rng = np.random.default_rng(11)
    for shape in [(1, 301, 263), (3, 130, 171)]:  # one image: columns split; three: lines split
        x = rng.standard_normal(shape) * 100
        runs = []
        for threads, fast in [(1, True), (2, True), (3, True), (1, False)]:
            try:
                wavelet.THREADS, wavelet.FAST = threads, fast
                pyr = wavelet.forward(x, 4)
                runs.append((pyr, wavelet.inverse(pyr)))
            finally:
                wavelet.THREADS, wavelet.FAST = 2, True
        for pyr, back in runs[1:]:
            assert np.array_equal(pyr[0], runs[0][0][0]) and np.array_equal(back, runs[0][1])
            assert all(np.array_equal(a, b) for d, e in zip(pyr[1], runs[0][0][1]) for a, b in zip(d, e))


@pytest.mark.skipif(not subbands.FAST, reason="the compiled coder is not built")
def test_compiled_dequantisation_in_place_matches_numpy() -> None:
    """decoder.dequantise_pyramid compiled, compiled over the integers' own memory, and in numpy:
    the same binary64 coefficients (HNR.md's operation order)."""
    pyr, levels = _random_pyramid(np.random.default_rng(8), 3, 37, 30, 20.0)
    steps, offsets = transform_decoder.band_steps(0.61, levels), [5, -9, 0, 32, -32, 7][:levels + 1]
    copy = (pyr[0].copy(), [tuple(b.copy() for b in d) for d in pyr[1]])
    fast = transform_decoder.dequantise_pyramid(pyr, steps, offsets)
    try:
        subbands.FAST = False
        ref = transform_decoder.dequantise_pyramid(pyr, steps, offsets)
    finally:
        subbands.FAST = True
    in_place = transform_decoder.dequantise_pyramid(copy, steps, offsets, in_place=True)
    for got in (fast, in_place):
        assert np.array_equal(got[0], ref[0]) and got[0].dtype == np.float64
        assert all(np.array_equal(a, b) for d, e in zip(got[1], ref[1]) for a, b in zip(d, e))


@pytest.mark.skipif(not subbands.FAST, reason="the compiled coder is not built")
def test_compiled_quantiser_same_bits_with_and_without_its_vector_kernel(tmp_path) -> None:
    """The compiled quantiser's AVX2 kernel (where the CPU has it) and its portable one
    (HINERC_PORTABLE=1) give the same integers and the same error sums, bit for bit, for rows of every
    length modulo the four lanes, both quantisers (|c| * (1 / s) and |c| / s)."""
    script = (
        "import sys, numpy as np\n"
        "from hinercodec.codecs.transform import bitstream as b\n"
        "rng = np.random.default_rng(5)\n"
        "out = []\n"
        "for n in (1, 3, 4, 7, 64, 1001):\n"
        "    x = rng.laplace(size=(3, n)) * 4\n"
        "    x[:, ::5] = 0.0\n"
        "    for divide in (False, True):\n"
        "        q, st = np.empty(x.shape, np.int64), np.zeros((3, 4))\n"
        "        b.fast_quantise(x, q, st, 3, n, 0.7, 0.35, divide)\n"
        "        out += [q, st]\n"
        "np.savez(sys.argv[1], *out)\n")
    runs = []
    for portable in ("0", "1"):
        target = tmp_path / f"q{portable}.npz"
        subprocess.run([sys.executable, "-c", script, str(target)], check=True,
                       env={**os.environ, "HINERC_PORTABLE": portable})
        with np.load(target) as f:
            runs.append([f[name] for name in sorted(f.files, key=lambda s: int(s.split("_")[1]))])
    assert len(runs[0]) == len(runs[1]) == 24
    for a, b in zip(*runs):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("bpppb", [0.1, 0.8])
def test_model_from_the_encoders_coefficients_decodes_the_same_cube(bpppb: float) -> None:
    """What the transform encoder leaves in Job.keep (the coefficients its payload codes) builds the
    same decoded cube, bit for bit, as entropy-decoding the file (the encoder's own measure of a
    file, hinercodec.api and hinercodec.tiling, takes that path); coefficients of another shape are
    refused as a damaged model."""
    from hinercodec.codecs.base import Budget
    from hinercodec.cube import band_ranges, normalised
    from hinercodec.decoder import Decoder
    from hinercodec.demo import sample
    from hinercodec.errors import CorruptFileError
    from hinercodec.jobs import run_encoder
    from hinercodec.options import EncodeOptions

    cube = np.asarray(sample().data)[:40, :48]
    offset, scale = band_ranges(cube)
    keep: dict = {}
    data, _ = run_encoder(normalised(cube, offset, scale), cube.dtype, offset, scale, None,
                          Budget.from_bpppb(bpppb, cube.shape), EncodeOptions(bpppb=bpppb), keep=keep)
    ints = keep["coefficients"]
    copy = (ints[0].copy(), [tuple(b.copy() for b in level) for level in ints[1]])
    assert np.array_equal(Decoder(data, "cpu", coefficients=copy).bands(), Decoder(data, "cpu").bands())
    wrong = (ints[0][:, :-1].copy(), [tuple(b.copy() for b in level) for level in ints[1]])
    with pytest.raises(CorruptFileError):
        Decoder(data, "cpu", coefficients=wrong)


@pytest.mark.skipif(not subbands.FAST, reason="the compiled coder is not built")
def test_unpack_into_given_memory_clears_it_first() -> None:
    """bitstream.unpack(storage=): the pyramid decoded in memory that held anything before (the
    tiled decoder hands a model the memory of the last one's coefficients) is the pyramid decoded
    afresh, its subbands views of that memory; memory of the wrong size is not used."""
    rng = np.random.default_rng(11)
    for signs in (False, True):
        pyr, levels = _random_pyramid(rng, 3, 37, 29, 1.0)
        data = subbands.pack(pyr, signs)
        storage = rng.integers(-(1 << 40), 1 << 40, 3 * 37 * 29)
        got = subbands.unpack(data, 3, 37, 29, levels, signs, storage=storage)
        assert _same(got, pyr) and np.shares_memory(got[0], storage)
        other = np.full(3 * 37 * 29 - 1, 7, np.int64)
        got = subbands.unpack(data, 3, 37, 29, levels, signs, storage=other)
        assert _same(got, pyr) and not np.shares_memory(got[0], other)


def test_transform_tiles_fit_the_memory_target():
    """api.tile_for: a large cube of few 16-bit bands gets tiles whose search, two in flight, stays
    within twice the cube's bytes and 300 MB (issue 16): the 2048 x 2560 x 20 uint16 CAVE mosaic in
    512-pixel tiles (640 by the tile-size caps alone); a 1000 x 1000 x 156 float32 cube keeps its
    448; cubes under the caps stay whole."""
    from hinercodec import api

    o = api.EncodeOptions(bpppb=0.2)
    assert api.tile_for(o, (2048, 2560, 20), 2) == 512
    assert api.tile_for(o, (2048, 2560, 20), 8) == 640
    assert api.tile_for(o, (1000, 1000, 156), 4) == 448
    assert api.tile_for(o, (512, 512, 31), 2) == 0 and api.tile_for(o, (95, 95, 156), 4) == 0
    for shape, itemsize in (((2048, 2560, 20), 2), ((1000, 1000, 156), 4), ((4000, 4000, 8), 1)):
        side = api.tile_for(o, shape, itemsize)
        k = min(shape[2], api.TYPICAL_K)
        in_flight = 2 * api.TILE_VALUE_BYTES * side * side * k
        assert in_flight <= 2 * shape[0] * shape[1] * shape[2] * itemsize + 2 * api.TILE_ROOM
