"""The library API (hinercodec.api) end to end on crops of the real scenes in ../shared/data.

They run on the default codec (transform) at --effort 1: they check what the codec promises (shape,
dtype, units, rate window, determinism, subsets, interpolation, errors), not how good the file is;
the network codecs have their own checks where they differ (a 2-epoch hiner). Every encode that
several tests need is made once per module.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from hinercodec import api
from hinercodec.errors import CorruptFileError, InputError, RequestError, UnsupportedFileError, UsageError
from hinercodec.formats.cubeio import read_cube
from hinercodec.formats.hnrfile import pack, unpack
from hinercodec.metrics import distortion

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
EPOCHS = 2
SIDE = 32  # crop side: small enough for seconds per encode, every band kept
SIGNATURE_BYTES = 8  # the .hnr signature precedes the first chunk (formats/HNR.md)

# One scene per reader format: file, dtype the reader must return, a rate the 32 x 32 crop's
# smallest network fits under (the smallest network's rate grows as the crop shrinks).
SCENES = {
    "samson": ("samson.mat", np.float32, 0.25),  # MATLAB v5, float
    "houston": ("houston2018_crop.mat", np.uint16, 0.5),  # MATLAB v5, integer, wavelengths
    "pavia": ("pavia_centre_crop_v73.mat", np.float64, 0.5),  # MATLAB v7.3 (HDF5), no wavelengths
    "muufl": ("muufl_crop_v73.mat", np.float32, 0.5),  # MATLAB v7.3 (HDF5), no wavelengths
    "cave": ("cave_balloons.h5", np.uint16, 1.0),  # plain HDF5, 20 bands only: needs a higher rate
}


@dataclass
class Encoded:
    cube: np.ndarray  # the crop that was encoded
    wavelengths: np.ndarray | None
    options: api.EncodeOptions
    result: api.EncodeResult
    progress: list


def options(bpppb: float, seed: int = 0) -> api.EncodeOptions:
    return api.EncodeOptions(bpppb=bpppb, effort=1, seed=seed)


def network_options(bpppb: float, seed: int = 0) -> api.EncodeOptions:
    return api.EncodeOptions(bpppb=bpppb, model="hiner", epochs=EPOCHS, seed=seed, device="cpu")


def rate(data: bytes, shape: tuple) -> float:
    """PROTOCOL.md's rate, computed here independently of the library."""
    h, w, c = shape
    return 8.0 * len(data) / (h * w * c)


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg, repr(msg)
    return msg


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip("../shared/data not found")
    return DATA


@pytest.fixture(scope="module")
def scenes(data_dir: Path) -> dict:
    """name -> (32 x 32 x C crop from the scene's interior, wavelengths or None)."""
    out = {}
    for name, (fname, dtype, _) in SCENES.items():
        cube = read_cube(data_dir / fname)
        assert cube.data.dtype == dtype, (name, cube.data.dtype)
        crop = np.ascontiguousarray(cube.data[16:16 + SIDE, 16:16 + SIDE, :])
        out[name] = (crop, cube.wavelengths)
    return out


@pytest.fixture(scope="module")
def encoded(scenes: dict) -> dict:
    """name -> Encoded, one 2-epoch encode per scene, shared by the whole module."""
    out = {}
    for name, (crop, wl) in scenes.items():
        opts = options(SCENES[name][2])
        calls: list = []
        result = api.encode(crop, wl, opts, progress=calls.append)
        out[name] = Encoded(crop, wl, opts, result, calls)
    return out


@pytest.fixture(scope="module")
def decoded(encoded: dict) -> dict:
    return {name: api.decode(e.result.data) for name, e in encoded.items()}


# ---------------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", list(SCENES))
def test_round_trip_shape_dtype_units(name: str, encoded: dict, decoded: dict) -> None:
    e, out = encoded[name], decoded[name]
    x = e.cube
    assert out.shape == x.shape and out.dtype == x.dtype
    # Decoding maps the clamped network output through the band's BNDS offset and scale: every
    # decoded value lies inside the band's original range widened by at most 2**-8 of its values
    # (hnrfile.band_normalisation), in the original units (floats: up to float32 rounding).
    lo, hi = x.min(axis=(0, 1)).astype(np.float64), x.max(axis=(0, 1)).astype(np.float64)
    slack = 2.0 ** -7 * (np.abs(lo) + hi - lo) + 1e-6 * max(float(hi.max() - lo.min()), 1.0)
    assert np.isfinite(out).all()
    assert (out >= lo - slack).all() and (out <= hi + slack).all()
    # Original units: PSNR_band normalises by the ORIGINAL's band ranges, so output left in the
    # network's [0, 1] units (or rescaled wrongly) scores near 0 dB; a 2-epoch fit scores well above.
    assert e.result.psnr_band > 8.0


@pytest.mark.parametrize("name", list(SCENES))
def test_encode_psnr_is_metrics_of_decode(name: str, encoded: dict, decoded: dict) -> None:
    e = encoded[name]
    d = distortion(e.cube, decoded[name])
    assert e.result.psnr_band == pytest.approx(d.psnr_band, abs=1e-9)
    assert e.result.stats["psnr_global"] == pytest.approx(d.psnr_global, abs=1e-9)
    assert e.result.stats["sam_deg"] == pytest.approx(d.sam_deg, abs=1e-9)


@pytest.mark.parametrize("name", list(SCENES))
def test_crop_meets_its_rate(name: str, encoded: dict) -> None:
    e = encoded[name]
    target = e.options.bpppb
    r = rate(e.result.data, e.cube.shape)
    assert e.result.bpppb == pytest.approx(r, rel=1e-12)
    assert 0.9 * target <= r <= target, (r, target)


def test_integer_cube_restores_exact_integer_range(scenes: dict, decoded: dict) -> None:
    """Integers come back rounded and clipped: no value outside the dtype, none outside the input's
    range widened by the BNDS rounding (at most 2**-8 of the band's values, hnrfile.band_normalisation)."""
    for name in ("houston", "cave"):
        x, out = scenes[name][0], decoded[name]
        info_ = np.iinfo(x.dtype)
        slack = int(np.ceil(2.0 ** -8 * float(x.max())))
        assert out.min() >= max(info_.min, int(x.min()) - slack) and out.max() <= min(info_.max, int(x.max()) + slack)
        assert np.array_equal(out, np.rint(out))


def test_progress_reports_the_search(encoded: dict) -> None:
    search = [p for p in encoded["houston"].progress if p.stage == "search"]
    assert search and all(1 <= p.step <= p.total and np.isfinite(p.psnr) for p in search)


def test_network_progress_reports_every_epoch() -> None:
    from hinercodec import demo

    calls: list = []
    api.encode(np.ascontiguousarray(demo.sample().data[:32, :32, :12]), None, network_options(3.0),
               progress=calls.append)
    fit = [p for p in calls if p.stage == "fit"]
    assert [p.step for p in fit] == list(range(1, EPOCHS + 1))
    assert all(p.total == EPOCHS and np.isfinite(p.loss) for p in fit)


# ---------------------------------------------------------------------------------------------- rate control


@pytest.fixture(scope="module")
def houston_full(data_dir: Path):
    cube = read_cube(data_dir / "houston2018_crop.mat")
    return cube.data, cube.wavelengths


@pytest.mark.parametrize("target", [0.1, 0.2, 0.4])
def test_rate_window_full_houston(target: float, houston_full) -> None:
    """PROTOCOL.md: the file's rate is <= the target and >= 0.9 of it, at several targets."""
    cube, wl = houston_full
    res = api.encode(cube, wl, options(target))
    r = rate(res.data, cube.shape)
    assert 0.9 * target <= r <= target, (r, target, res.stats)
    assert res.bpppb == pytest.approx(r, rel=1e-12)
    if target == 0.2:  # the acceptance case: decode restores uint16 in shape and type
        out = api.decode(res.data)
        assert out.shape == (128, 128, 48) and out.dtype == np.uint16
        assert api.info(res.data)["bpppb"] == pytest.approx(r, rel=1e-12)


def test_rate_window_samson_crop(scenes: dict, data_dir: Path) -> None:
    """A second scene and shape: samson 64 x 64 x 156 (float32) at 0.1 bpppb."""
    cube = read_cube(data_dir / "samson.mat")
    crop = np.ascontiguousarray(cube.data[:64, :64])
    res = api.encode(crop, cube.wavelengths, options(0.1))
    r = rate(res.data, crop.shape)
    assert 0.09 <= r <= 0.1, (r, res.stats)


def test_rate_too_low_for_smallest_network(scenes: dict) -> None:
    crop, wl = scenes["houston"]  # 32 x 32 x 48: the smallest hiner network needs far more than 0.02
    with pytest.raises(RequestError) as exc:
        api.encode(crop, wl, network_options(0.02))
    msg = one_line(exc)
    assert "too low" in msg and "bpppb" in msg  # and says what the smallest network needs


# ---------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes(encoded: dict) -> None:
    e = encoded["houston"]
    again = api.encode(e.cube, e.wavelengths, e.options)
    assert again.data == e.result.data


@pytest.mark.slow
@pytest.mark.parametrize("model", ["latent", "hiner"])
def test_same_seed_same_bytes_in_fresh_processes(model: str) -> None:
    """torch seeds each process at random: nothing the file depends on may use that seed."""
    script = ("import hashlib, sys; from hinercodec import api, demo; cube = demo.sample().data; "
              f"d = api.encode(cube[:32, :32, :12], None, api.EncodeOptions(bpppb=3.0, epochs=4, model={model!r}, "
              "device='cpu')).data; print(hashlib.sha256(d).hexdigest())")
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 1


def test_other_seed_other_bytes_for_a_network() -> None:
    """The network codecs start from random weights: another seed, another file. (The transform
    codec draws nothing at random: the seed does not change its files.)"""
    from hinercodec import demo

    cube = np.ascontiguousarray(demo.sample().data[:32, :32, :12])
    a, b = (api.encode(cube, None, network_options(3.0, seed=s)).data for s in (0, 1))
    assert a != b


def test_transform_file_is_the_same_for_every_seed(encoded: dict) -> None:
    e = encoded["houston"]
    assert api.encode(e.cube, e.wavelengths, options(e.options.bpppb, seed=7)).data == e.result.data


# ---------------------------------------------------------------------------------------------- constant bands


@pytest.mark.parametrize("name,value", [("houston", 1234), ("samson", 0.37)])
def test_constant_band_is_exact(name: str, value: float, scenes: dict) -> None:
    crop, wl = scenes[name]
    x = crop.copy()
    x[:, :, 5] = value
    res = api.encode(x, wl, options(SCENES[name][2]))
    out = api.decode(res.data)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out[:, :, 5], np.full(x.shape[:2], value, dtype=x.dtype))
    assert np.isfinite(res.psnr_band)  # the constant band is left out of PSNR_band, not scored as inf/nan
    assert distortion(x, out).constant_bands == [5]


# ---------------------------------------------------------------------------------------------- band subsets


@pytest.mark.parametrize("name", ["houston", "pavia"])
def test_decode_band_subset_in_asked_order(name: str, encoded: dict, decoded: dict) -> None:
    data, full = encoded[name].result.data, decoded[name]
    c = full.shape[2]
    for bands in ([c - 1, 0, 3], [7], [2, 2], list(range(c))[::-1]):
        sub = api.decode(data, bands=bands)
        assert sub.dtype == full.dtype
        np.testing.assert_array_equal(sub, full[:, :, bands])
    assert api.decode(data, bands=[]).shape == full.shape[:2] + (0,)


@pytest.mark.parametrize("bands", [[48], [0, -1], [10**6]])
def test_decode_band_out_of_range(bands: list, encoded: dict) -> None:
    with pytest.raises(RequestError) as exc:
        api.decode(encoded["houston"].result.data, bands=bands)
    assert "out of range" in one_line(exc)


# ---------------------------------------------------------------------------------------------- interp


@pytest.mark.parametrize("name", ["houston", "muufl"])
def test_interp_at_band_position_is_that_band(name: str, encoded: dict, decoded: dict) -> None:
    data, full = encoded[name].result.data, decoded[name]
    pos = unpack(data).band_positions()
    idx = [0, 5, len(pos) - 1]
    out = api.interp(data, lambdas=pos[idx])
    assert out.shape == full.shape[:2] + (3,) and out.dtype == full.dtype
    np.testing.assert_array_equal(out, full[:, :, idx])


def test_interp_nm_on_file_with_wavelengths(encoded: dict, decoded: dict) -> None:
    e = encoded["houston"]
    wl = e.wavelengths
    # At a band's wavelength as the file stores it (float64 grid), interp is that band exactly.
    file_wl = unpack(e.result.data).wavelengths
    at_band = api.interp(e.result.data, nm=[file_wl[3]])
    np.testing.assert_array_equal(at_band[:, :, 0], decoded["houston"][:, :, 3])
    between = api.interp(e.result.data, nm=[551.5, float(wl[0]), float(wl[-1])])
    assert between.shape == (SIDE, SIDE, 3) and between.dtype == np.uint16
    # Offset and scale are interpolated between the neighbouring bands, so an in-between band stays
    # inside the union of their original ranges.
    j = int(np.searchsorted(wl, 551.5))
    nb = e.cube[:, :, j - 1:j + 1]
    slack = int(np.ceil(2.0 ** -8 * float(nb.max())))  # the BNDS rounding (hnrfile.band_normalisation)
    assert nb.min() - slack <= between[:, :, 0].min() and between[:, :, 0].max() <= nb.max() + slack


@pytest.mark.parametrize("nm", [[300.0], [1050.5], [float("nan")], [500.0, 2000.0]])
def test_interp_nm_outside_range(nm: list, encoded: dict) -> None:
    with pytest.raises(RequestError) as exc:
        api.interp(encoded["houston"].result.data, nm=nm)
    assert "outside" in one_line(exc)


@pytest.mark.parametrize("lam", [[-0.01], [1.0001], [float("nan")], [float("inf")], [0.5, 2.0]])
def test_interp_lambda_outside_unit_interval(lam: list, encoded: dict) -> None:
    with pytest.raises(RequestError) as exc:
        api.interp(encoded["pavia"].result.data, lambdas=lam)
    assert "outside [0, 1]" in one_line(exc)


def test_interp_nm_without_wavelengths(encoded: dict) -> None:
    with pytest.raises(RequestError) as exc:
        api.interp(encoded["pavia"].result.data, nm=[500.0])
    assert "no wavelengths" in one_line(exc)


def test_interp_needs_exactly_one_kind_of_position(encoded: dict) -> None:
    data = encoded["houston"].result.data
    with pytest.raises(UsageError):
        api.interp(data)
    with pytest.raises(UsageError):
        api.interp(data, lambdas=[0.5], nm=[500.0])


def test_interp_empty_request(encoded: dict) -> None:
    """No position asked: an H x W x 0 stack (like decode(bands=[])) or a clear RequestError."""
    try:
        out = api.interp(encoded["houston"].result.data, lambdas=[])
    except RequestError:
        return
    assert out.shape == (SIDE, SIDE, 0)


@pytest.mark.parametrize("name", ["houston", "samson"])
def test_interp_is_continuous(name: str, encoded: dict) -> None:
    data = encoded[name].result.data
    f = unpack(data)
    ts = np.array([0.1, 0.37, 0.5, 0.81])
    a = api.interp(data, lambdas=ts).astype(np.float64)
    b = api.interp(data, lambdas=ts + 1e-4).astype(np.float64)
    span = float(f.band_scale.max())  # the widest band range, in the file's units
    assert np.abs(a - b).max() <= 0.01 * span


# ---------------------------------------------------------------------------------------------- info, evaluate


@pytest.mark.parametrize("name", ["houston", "pavia"])
def test_info(name: str, encoded: dict) -> None:
    e = encoded[name]
    data = e.result.data
    inf = api.info(data)
    json.dumps(inf)  # the CLI's --json prints it as is
    assert {"format_version", "encoder", "shape", "dtype", "bytes", "bpppb", "chunks", "model", "parameters",
            "bits", "wavelength_nm"} <= set(inf)
    assert inf["shape"] == list(e.cube.shape) and inf["dtype"] == str(e.cube.dtype)
    assert inf["bytes"] == len(data) and inf["bpppb"] == pytest.approx(rate(data, e.cube.shape), rel=1e-12)
    # the default codec's own bitstream sits in a CODE chunk: format 1.1
    assert inf["format_version"] == "1.1" and inf["encoder"].startswith("hinerc ")
    assert {"HHDR", "BNDS", "WAVE", "MODL", "CODE", "HEND"} <= set(inf["chunks"]) and "TENS" not in inf["chunks"]
    # Chunk sizes include their 12 bytes of framing: with the signature they account for every byte.
    assert SIGNATURE_BYTES + sum(inf["chunks"].values()) == len(data)
    assert inf["parameters"] == 0 and inf["bits"] == []
    assert inf["model"]["model"] == "transform2" and inf["model"]["height"] == SIDE and inf["model"]["width"] == SIDE
    if e.wavelengths is None:
        assert inf["wavelength_nm"] is None
    else:
        assert inf["wavelength_nm"] == [float(e.wavelengths[0]), float(e.wavelengths[-1])]


def test_info_of_a_network_file() -> None:
    from hinercodec import demo

    res = api.encode(np.ascontiguousarray(demo.sample().data[:32, :32, :12]), None, network_options(3.0))
    inf = api.info(res.data)
    assert inf["format_version"] == "1.0" and "TENS" in inf["chunks"] and "CODE" not in inf["chunks"]
    assert inf["parameters"] == res.stats["parameters"] and 8 in inf["bits"] and inf["model"]["model"] == "hiner"


@pytest.mark.parametrize("name", ["houston", "samson"])
def test_evaluate_matches_distortion(name: str, encoded: dict, decoded: dict) -> None:
    e = encoded[name]
    ev = api.evaluate(e.cube, e.result.data)
    d = distortion(e.cube, decoded[name])
    assert ev["psnr_band"] == pytest.approx(d.psnr_band, abs=1e-9)
    assert ev["psnr_global"] == pytest.approx(d.psnr_global, abs=1e-9)
    assert ev["sam_deg"] == pytest.approx(d.sam_deg, abs=1e-9)
    assert ev["constant_bands"] == d.constant_bands
    assert ev["bytes"] == len(e.result.data) and ev["bpppb"] == pytest.approx(rate(e.result.data, e.cube.shape))
    json.dumps(ev)


def test_evaluate_shape_mismatch(encoded: dict) -> None:
    e = encoded["houston"]
    for other in (e.cube[:-1], e.cube[:, :, :10], e.cube.transpose(2, 0, 1), e.cube[:, :, 0]):
        with pytest.raises(InputError) as exc:
            api.evaluate(other, e.result.data)
        one_line(exc)


# ---------------------------------------------------------------------------------------------- bad input


def _bad_cubes(scenes: dict) -> dict:
    x, _ = scenes["samson"]  # float32
    u, _ = scenes["houston"]  # uint16
    nan = x.copy()
    nan[3, 4, 5] = np.nan
    inf = x.copy()
    inf[0, 0, 0] = np.inf
    return {
        "2-D": x[:, :, 0],
        "4-D": x[None],
        "1-D": x[0, 0],
        "NaN": nan,
        "Inf": inf,
        "-Inf": -inf,
        "2x2xC": u[:2, :2],
        "3xWxC": u[:3],
        "no bands": u[:, :, :0],
        "bool": x > 0.5,
        "complex": x.astype(np.complex64),
        "int64": u.astype(np.int64),
        "object": u.astype(object),
    }


@pytest.mark.parametrize("case", ["2-D", "4-D", "1-D", "NaN", "Inf", "-Inf", "2x2xC", "3xWxC", "no bands",
                                  "bool", "complex", "int64", "object"])
def test_bad_cube_is_input_error(case: str, scenes: dict) -> None:
    with pytest.raises(InputError) as exc:
        api.encode(_bad_cubes(scenes)[case], None, options(1.0))
    one_line(exc)


@pytest.mark.parametrize("wl", [np.arange(47.0), np.r_[np.arange(47.0), 46.0], np.r_[np.nan, np.arange(47.0)]])
def test_bad_wavelengths_are_input_error(wl: np.ndarray, scenes: dict) -> None:
    with pytest.raises(InputError) as exc:
        api.encode(scenes["houston"][0], wl, options(1.0))
    one_line(exc)


@pytest.mark.parametrize("opts", [
    dict(bpppb=0.0), dict(bpppb=-0.2), dict(bpppb=float("nan")), dict(bpppb=float("inf")),
    dict(bits=3), dict(bits=11), dict(bits=8.5),
    dict(effort=0), dict(effort=10),
    dict(model="nope"),
    dict(device="tpu"), dict(device="cuda:99"),
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_bad_option_is_usage_error(opts: dict, scenes: dict) -> None:
    """Every EncodeOptions value outside its documented range is refused before any fitting (exit 2)."""
    with pytest.raises(UsageError) as exc:
        api.encode(scenes["houston"][0], None, api.EncodeOptions(**{"bpppb": 1.0, "model": "hiner", **opts}))
    one_line(exc)


@pytest.mark.parametrize("opts", [dict(bits=6), dict(epochs=5)], ids=lambda o: ",".join(o))
def test_option_the_codec_ignores_is_refused(opts: dict, scenes: dict) -> None:
    """The transform codec has no weights or epochs: setting them is an error, never silently ignored."""
    with pytest.raises(UsageError) as exc:
        api.encode(scenes["houston"][0], None, **opts)
    assert "no effect" in one_line(exc)


def test_options_as_keywords(scenes: dict) -> None:
    crop, wl = scenes["houston"]
    a = api.encode(crop, wl, bpppb=0.5, effort=1)
    b = api.encode(crop, wl, api.EncodeOptions(bpppb=0.5, effort=1))
    assert a.data == b.data
    with pytest.raises(TypeError):
        api.encode(crop, wl, bpppb_typo=0.5)


# ---------------------------------------------------------------------------------------------- damaged files


def _chunks(data: bytes) -> dict:
    """type -> (offset of the chunk's length field, data length), walking the framing by hand."""
    out, pos = {}, SIGNATURE_BYTES
    while pos < len(data):
        length, kind = struct.unpack_from("<I4s", data, pos)
        out[kind.decode("ascii")] = (pos, length)
        pos += 12 + length
    assert pos == len(data)
    return out


def _calls(data: bytes, original: np.ndarray) -> list:
    return [lambda: api.decode(data), lambda: api.decode(data, bands=[0]), lambda: api.info(data),
            lambda: api.interp(data, lambdas=[0.5]), lambda: api.evaluate(original, data)]


def test_truncated_file_is_corrupt(encoded: dict) -> None:
    e = encoded["houston"]
    data = e.result.data
    cuts = sorted({0, 1, 7, 8, 9, 20, len(data) // 3, len(data) // 2, len(data) - 13, len(data) - 12,
                   len(data) - 1} | {pos for pos, _ in _chunks(data).values()})
    for n in cuts:
        for call in _calls(data[:n], e.cube):
            with pytest.raises(CorruptFileError):
                call()


def test_flipped_byte_in_code_is_corrupt(encoded: dict) -> None:
    e = encoded["houston"]
    data = e.result.data
    pos, length = _chunks(data)["CODE"]
    # The length field, the type, bytes across the payload, and the CRC.
    where = [pos, pos + 5] + list(np.linspace(pos + 8, pos + 8 + length - 1, 25).astype(int)) + [pos + 8 + length]
    for i in where:
        bad = bytearray(data)
        bad[i] ^= 0x5A
        for call in _calls(bytes(bad), e.cube):
            with pytest.raises(CorruptFileError):
                call()


def test_tampered_code_with_valid_crc_never_crashes(encoded: dict) -> None:
    """A byte changed in CODE with its CRC recomputed (a deliberate forgery, or a bug in some other
    writer): decode either refuses it with a HinercError or returns a cube of the right shape and type."""
    e = encoded["houston"]
    data = e.result.data
    pos, length = _chunks(data)["CODE"]
    start = pos + 8
    for i in np.linspace(start, start + length - 1, 40).astype(int):
        bad = bytearray(data)
        bad[i] ^= 0xFF
        payload = bytes(bad[start:start + length])
        bad[start + length:start + length + 4] = struct.pack("<I", zlib.crc32(payload, zlib.crc32(b"CODE")))
        try:
            with np.errstate(all="ignore"):
                out = api.decode(bytes(bad))
        except (CorruptFileError, UnsupportedFileError):
            continue
        assert out.shape == e.cube.shape and out.dtype == e.cube.dtype, i


@pytest.mark.parametrize("key,value", [("height", 31), ("width", 24), ("strides", [2, 2]), ("kernel", 5),
                                       ("grid", [1]), ("activation", "relu"), ("pe_base", "x"), ("extra", 1)])
def test_forged_model_config_is_corrupt(key: str, value, encoded: dict) -> None:
    """A MODL that disagrees with the weights or with the header (valid CRCs: written by a buggy
    writer) is refused; decode never returns a cube of another shape than HHDR declares."""
    f = unpack(encoded["houston"].result.data)
    f.model_config = {**f.model_config, key: value}
    with pytest.raises(CorruptFileError) as exc:
        api.decode(pack(f))
    one_line(exc)


@pytest.mark.parametrize("junk", [b"", b"hello", b"\x89HNR\r\n\x1a\n", b"\x93NUMPY" + bytes(100)])
def test_not_a_hnr_file(junk: bytes) -> None:
    with pytest.raises(CorruptFileError) as exc:
        api.decode(junk)
    one_line(exc)


# ---------------------------------------------------------------------------------------------- no torch in formats


FORMAT_MODULES = ["hinercodec", "hinercodec.formats"] + sorted(
    f"hinercodec.formats.{p.stem}" for p in (REPO / "formats").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", FORMAT_MODULES)
def test_format_modules_never_import_torch(module: str) -> None:
    code = f"import sys, {module}; sys.exit(3 if 'torch' in sys.modules else 0)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{module} imports torch" if proc.returncode == 3 else proc.stderr


# ---------------------------------------------------------------------------------------------- lowrank model


@pytest.mark.slow
def test_lowrank_round_trip_interp_and_rate() -> None:
    """--model lowrank: meets the rate window, decodes from the file alone, and interp at a coded
    band's position gives that band (its band table is exact there and linear in between)."""
    from hinercodec import demo

    cube = np.ascontiguousarray(demo.sample().data[:32, :32, :12])
    result = api.encode(cube, None, api.EncodeOptions(bpppb=3.0, epochs=30, model="lowrank", device="cpu"))
    assert 2.7 <= result.bpppb <= 3.0
    f = unpack(result.data)
    assert f.model_config["model"] == "lowrank"
    decoded = api.decode(result.data)
    assert decoded.shape == cube.shape and decoded.dtype == cube.dtype
    assert abs(distortion(cube, decoded).psnr_band - result.psnr_band) < 1e-9
    t = f.band_positions()
    assert np.array_equal(api.interp(result.data, lambdas=[t[5]])[:, :, 0], decoded[:, :, 5])
    mid = api.interp(result.data, lambdas=[(t[5] + t[6]) / 2])[:, :, 0].astype(np.float64)
    lo, hi = np.minimum(decoded[:, :, 5], decoded[:, :, 6]), np.maximum(decoded[:, :, 5], decoded[:, :, 6])
    assert np.mean((mid >= lo - 50) & (mid <= hi + 50)) > 0.9  # between its neighbours, nearly everywhere


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32, np.float64])
def test_normalised_by_strips_is_the_whole_cube_formula(dtype, monkeypatch) -> None:
    """cube.normalised works strip by strip (float64 temporaries of a few MB): the same float32
    values as the whole-cube formula, strips of one row or many, a constant band included."""
    from hinercodec import cube as cube_mod

    rng = np.random.default_rng(3)
    x = (rng.random((37, 23, 5)) * 3000 - (500 if np.dtype(dtype).kind != "u" else 0)).astype(dtype)
    offset, scale = rng.random(5) * 10, rng.random(5) * 4000
    scale[3] = 0.0
    safe = np.where(scale > 0, scale, 1.0)
    ref = (np.asarray(x, np.float64) - offset) / safe
    ref[:, :, scale <= 0] = 0.0
    ref = np.ascontiguousarray(ref.transpose(2, 0, 1), dtype=np.float32)
    for values in (1, 23 * 5 * 4, 1 << 20):
        monkeypatch.setattr(cube_mod, "NORMALISE_VALUES", values)
        out = cube_mod.normalised(x, offset, scale)
        assert out.dtype == np.float32 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, ref)


def test_laplacian_energy_by_strips() -> None:
    """tiling.laplacian_energy (SURVEY_ROWS rows at a time) against the whole-tile formula: exact
    for integer samples (every partial sum is an integer below 2**53), to rounding for floats."""
    from hinercodec import tiling

    rng = np.random.default_rng(4)
    for shape in ((3, 3, 2), (70, 41, 3), (tiling.SURVEY_ROWS + 2, 9, 1), (100, 5, 4)):
        x = rng.integers(0, 65536, shape).astype(np.uint16)
        f = x.astype(np.float64)
        lap = 4 * f[1:-1, 1:-1] - f[:-2, 1:-1] - f[2:, 1:-1] - f[1:-1, :-2] - f[1:-1, 2:]
        np.testing.assert_array_equal(tiling.laplacian_energy(x), (lap ** 2).sum(axis=(0, 1)))
        y = rng.random(shape).astype(np.float32)
        g = y.astype(np.float64)
        lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
        np.testing.assert_allclose(tiling.laplacian_energy(y), (lap ** 2).sum(axis=(0, 1)), rtol=1e-12)


def test_streaming_distortion_is_the_same_in_threads(monkeypatch):
    """StreamingDistortion.add takes its strips' sums in threads and adds them in strip order: the
    same figures, to the last bit, for any thread count, and those of distortion() on the whole."""
    from hinercodec import metrics

    rng = np.random.default_rng(3)
    original = rng.integers(0, 4000, size=(61, 23, 7)).astype(np.uint16)
    decoded = (original + rng.integers(-9, 10, size=original.shape)).clip(0, 4000).astype(np.uint16)
    monkeypatch.setattr(metrics, "STRIP_VALUES", 200)  # many strips of a few rows
    results = []
    for threads in (1, 2, 5):
        acc = metrics.StreamingDistortion(original.min(axis=(0, 1)), original.max(axis=(0, 1)))
        acc.add(original[:40], decoded[:40], threads)
        acc.add(original[40:], decoded[40:], threads)
        results.append(acc.result().as_dict())
    assert results[0] == results[1] == results[2]
    whole = distortion(original, decoded).as_dict()
    assert all(abs(whole[k] - results[0][k]) < 1e-9 for k in ("psnr_band", "psnr_global", "sam_deg", "max_abs_error"))


def test_tiled_summary_is_the_decoded_distortion():
    """A tiled file's summary (tiling.measure: a row of tiles at a time, sums in threads) is the
    distortion of the file's decode against the cube."""
    path = DATA / "houston2018_crop.mat"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    cube = np.ascontiguousarray(read_cube(path).data[:70, :90])
    result = api.encode(cube, bpppb=0.5, tile=32)
    assert result.stats["tiles"] == 9
    decoded = distortion(cube, api.decode(result.data))
    assert abs(decoded.psnr_band - result.psnr_band) < 1e-9
