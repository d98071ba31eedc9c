"""Sensor files in and out (issue 17): ENVI (BSQ/BIL/BIP, every header field), GeoTIFF (CRS,
transform, nodata), NetCDF band-first, NaN borders; the `smta`/`mask` chunks; --layout; nodata.

Every test file is built here from the real scenes in ../shared/data (no committed binaries).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
from click.testing import CliRunner
from scipy.io import loadmat

from hinercodec import api
from hinercodec.cli import main as cli
from hinercodec.errors import CorruptFileError, InputError
from hinercodec.formats import cubeio, envi, hnrfile
from hinercodec.formats.container import Chunk, read_chunks, write_chunks
from hinercodec.formats.hnrfile import zjson
from hinercodec.metrics import distortion

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FAST = ["--effort", "1", "--bpppb", "0.5", "--device", "cpu", "--quiet"]
MAP_INFO = "UTM, 1.000, 1.000, 271860.000, 3290190.000, 1.000000, 1.000000, 15, North, WGS-84, units=Meters"
CS = 'PROJCS["WGS_1984_UTM_Zone_15N",GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137,298.257]]]]'


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def one_line(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hinerc: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def houston() -> dict:
    if not DATA.is_dir():
        pytest.skip("../shared/data not found")
    mat = loadmat(DATA / "houston2018_crop.mat")
    cube = np.ascontiguousarray(mat["houston"][:64, :64])
    return {"cube": cube, "nm": mat["wavelength_nm"].ravel().astype(np.float64)}


def write_envi_by_hand(directory: Path, cube: np.ndarray, nm: np.ndarray, interleave: str, byte_order: int = 0,
                       offset: int = 0, name: str = "scene", data_suffix: str = ".img") -> Path:
    """An ENVI pair as an AVIRIS-style header has it: micrometres, fwhm, bbl, band names, map info,
    coordinate system string, nodata, other fields (written by this test, not by hinerc)."""
    h, w, c = cube.shape
    code = {np.dtype(np.uint16): 12, np.dtype(np.float32): 4, np.dtype(np.int16): 2, np.dtype(np.float64): 5}[cube.dtype]
    axes = envi.INTERLEAVES[interleave]
    stored = cube.transpose(tuple("hwc".index(a) for a in axes))
    raw = np.ascontiguousarray(stored, dtype=cube.dtype.newbyteorder("<" if byte_order == 0 else ">")).tobytes()
    (directory / (name + data_suffix)).write_bytes(b"\x00" * offset + raw)
    um = ", ".join(f"{v / 1000:.6f}" for v in nm)
    header = f"""ENVI
description = {{
  Houston 2018 crop, written by the sensor-format tests}}
samples = {w}
lines   = {h}
bands   = {c}
header offset = {offset}
file type = ENVI Standard
data type = {code}
interleave = {interleave}
sensor type = ITRES CASI-1500
byte order = {byte_order}
map info = {{{MAP_INFO}}}
coordinate system string = {{{CS}}}
wavelength units = Micrometers
data ignore value = 0
wavelength = {{{um}}}
fwhm = {{{", ".join(["0.0134"] * c)}}}
bbl = {{{", ".join(["1"] * (c - 1) + ["0"])}}}
band names = {{{", ".join(f"Band {i + 1}" for i in range(c))}}}
acquisition time = 2017-02-16T16:22:00Z
"""
    (directory / (name + ".hdr")).write_text(header)
    return directory / (name + ".hdr")


@pytest.mark.parametrize("interleave, byte_order, offset, dtype", [
    ("bsq", 0, 0, np.uint16), ("bil", 1, 128, np.uint16), ("bip", 0, 0, np.float32), ("bsq", 1, 0, np.float64)])
def test_envi_reader(houston, tmp_path, interleave, byte_order, offset, dtype):
    cube = houston["cube"].astype(dtype)
    hdr = write_envi_by_hand(tmp_path, cube, houston["nm"], interleave, byte_order, offset)
    for path in (hdr, tmp_path / "scene.img"):  # the header or the data file as INPUT
        got = cubeio.read_cube(path)
        assert got.data.dtype == np.dtype(dtype) and np.array_equal(got.data, cube)
        assert np.allclose(got.wavelengths, houston["nm"], atol=1e-3)  # micrometres -> nm for WAVE
        meta = got.metadata
        assert meta["map_info"] == MAP_INFO and meta["coordinate_system_string"] == CS
        assert meta["nodata"] == 0 and meta["wavelength_units"] == "Micrometers" and meta["interleave"] == interleave
        assert meta["bands"]["bbl"][-1] == 0 and meta["bands"]["band_names"][2] == "Band 3"
        assert meta["envi"]["sensor type"] == "ITRES CASI-1500" and "acquisition time" in meta["envi"]
    with cubeio.open_cube(hdr) as reader:  # memory-mapped windows
        assert np.array_equal(reader.read(5, 17, 30, 41), cube[5:17, 30:41])


@pytest.mark.parametrize("code", sorted(envi.DATA_TYPES))
def test_every_envi_data_type(houston, tmp_path, code):
    dtype = np.dtype(envi.DATA_TYPES[code])
    cube = houston["cube"][:8, :9, :5].astype(dtype)
    raw = np.ascontiguousarray(cube.transpose(2, 0, 1).astype(dtype.newbyteorder(">"))).tobytes()
    (tmp_path / "t.img").write_bytes(raw)
    (tmp_path / "t.hdr").write_text(f"ENVI\nsamples = 9\nlines = 8\nbands = 5\ndata type = {code}\n"
                                    "interleave = bsq\nbyte order = 1\n")
    if dtype.kind == "c":
        assert "complex" in str(pytest.raises(InputError, cubeio.read_cube, tmp_path / "t.hdr").value)
        return
    got = cubeio.read_cube(tmp_path / "t.hdr")
    assert got.data.dtype == dtype and np.array_equal(got.data, cube)


def test_envi_writer_round_trip_keeps_every_field(houston, tmp_path):
    hdr = write_envi_by_hand(tmp_path, houston["cube"], houston["nm"], "bil")
    first = cubeio.read_cube(hdr)
    cubeio.write_cube(tmp_path / "copy.hdr", first.data, first.wavelengths, metadata=first.metadata)
    again = cubeio.read_cube(tmp_path / "copy.img")
    assert np.array_equal(again.data, first.data) and again.metadata == first.metadata


def test_envi_encode_decode_cli(houston, tmp_path):
    """ENVI in, .hnr, ENVI out: metadata equal, nodata exact, PSNR_band of the valid pixels as for
    the same cube from a .mat; --window writes its own map info, --bands its wavelengths and fwhm."""
    cube = houston["cube"].copy()
    cube[:6] = 0
    cube[:, 58:] = 0  # a nodata border ("data ignore value = 0")
    hdr = write_envi_by_hand(tmp_path, cube, houston["nm"], "bsq")
    assert run("encode", hdr, "-o", tmp_path / "s.hnr", *FAST).exit_code == 0
    info = json.loads(run("info", tmp_path / "s.hnr", "--json").stdout)
    assert info["metadata"]["map_info"] == MAP_INFO and len(info["metadata"]["bands"]["fwhm"]) == 48
    assert info["nodata"] == {"value": 0.0, "pixels": 6 * 64 + 58 * 6}
    assert "smta" in info["chunks"] and "mask" in info["chunks"]
    assert info["bpppb"] <= 0.5  # the chunks count in the rate
    assert "nodata" in run("info", tmp_path / "s.hnr").stdout
    assert run("decode", tmp_path / "s.hnr", "-o", tmp_path / "out.hdr").exit_code == 0
    out = cubeio.read_cube(tmp_path / "out.hdr")
    src = cubeio.read_cube(hdr)
    assert out.metadata == src.metadata
    invalid = (cube == 0).all(axis=2)
    assert (out.data[invalid] == 0).all() and not (out.data[~invalid] == 0).all(axis=1).any()
    valid_psnr = distortion(cube[~invalid][:, None], out.data[~invalid][:, None]).psnr_band
    ev = json.loads(run("eval", hdr, tmp_path / "s.hnr", "--json").stdout)
    assert ev["nodata_exact"] and abs(ev["psnr_band"] - valid_psnr) < 1e-9
    # The same valid pixels from a .mat without the border: about the same quality at the same rate.
    np.save(tmp_path / "plain.npy", houston["cube"][6:, :58])
    plain = json.loads(run("encode", tmp_path / "plain.npy", "-o", tmp_path / "p.hnr", *FAST, "--json").stdout)
    assert valid_psnr > plain["psnr_band"] - 1.0
    # A window and some bands: the window's map info, the bands' wavelengths and fwhm.
    assert run("decode", tmp_path / "s.hnr", "-o", tmp_path / "w.img", "--window", "10:30,20:40",
               "--bands", "4,7").exit_code == 0
    win = cubeio.read_cube(tmp_path / "w.hdr")
    assert win.data.shape == (20, 20, 2) and np.array_equal(win.data, out.data[10:30, 20:40][:, :, [4, 7]])
    parts = envi.split_list(win.metadata["map_info"])
    assert float(parts[3]) == 271860.0 + 20 and float(parts[4]) == 3290190.0 - 10
    assert win.metadata["bands"]["wavelength"] == [src.metadata["bands"]["wavelength"][i] for i in (4, 7)]
    assert win.metadata["bands"]["band_names"] == ["Band 5", "Band 8"]


def test_tiled_envi(houston, tmp_path):
    """A cube coded in tiles keeps its metadata and its nodata: the whole image's mask, each tile's
    part of it coded shape-adaptively, nodata exact in a full decode, in a window and in an archive run."""
    hdr = write_envi_by_hand(tmp_path, houston["cube"], houston["nm"], "bil")
    assert run("encode", hdr, "-o", tmp_path / "t.hnr", "--tile", "32", *FAST).exit_code == 0
    info = json.loads(run("info", tmp_path / "t.hnr", "--json").stdout)
    assert info["format_version"] == "2.0" and info["metadata"]["map_info"] == MAP_INFO
    assert run("decode", tmp_path / "t.hnr", "-o", tmp_path / "w.hdr", "--window", "0:40,0:40").exit_code == 0
    assert cubeio.read_cube(tmp_path / "w.hdr").metadata["bands"] == cubeio.read_cube(hdr).metadata["bands"]
    cube, valid = _rotated_frame(houston["cube"][:48, :48], 0)  # 72 x 72, a rotated border of 0
    cube[:, :, 5][~valid] = 0
    hdr = write_envi_by_hand(tmp_path, cube, houston["nm"], "bil", name="holes")  # data ignore value = 0
    r = json.loads(run("encode", hdr, "-o", tmp_path / "h.hnr", "--tile", "32", *FAST, "--json").stdout)
    assert r["stats"]["tiles"] == 9 and r["stats"]["nodata_pixels"] == int((~valid).sum()) and r["bpppb"] <= 0.5
    info = json.loads(run("info", tmp_path / "h.hnr", "--json").stdout)
    assert info["format_version"] == "2.0" and "mask" in info["chunks"]
    assert info["nodata"] == {"value": 0.0, "pixels": int((~valid).sum())}
    dec = api.decode((tmp_path / "h.hnr").read_bytes())
    assert (dec[~valid] == 0).all() and not (dec[valid] == 0).all(axis=1).any()
    psnr = distortion(cube[valid][:, None], dec[valid][:, None]).psnr_band
    assert abs(psnr - r["psnr_band"]) < 1e-9 and psnr > 30
    # A window across tiles, read tile by tile from the file: nodata exact there too.
    assert run("decode", tmp_path / "h.hnr", "-o", tmp_path / "hw.hdr", "--window", "5:50,20:70").exit_code == 0
    win = cubeio.read_cube(tmp_path / "hw.hdr")
    assert np.array_equal(win.data, dec[5:50, 20:70]) and win.metadata["nodata"] == 0
    # An archive run (-O DIR) of two such scenes.
    hdr2 = write_envi_by_hand(tmp_path, cube[::-1].copy(), houston["nm"], "bsq", name="holes2")
    assert run("encode", hdr, hdr2, "-O", tmp_path / "out", "--tile", "32", *FAST).exit_code == 0
    for name, original in (("holes", cube), ("holes2", cube[::-1])):
        got = api.decode((tmp_path / "out" / f"{name}.hnr").read_bytes())
        invalid = (original == 0).all(axis=2)
        assert (got[invalid] == 0).all() and not (got[~invalid] == 0).all(axis=1).any()


def test_tiled_nan_border_window(tmp_path):
    """Float NaN nodata in tiles (api, a window through the Decoder): NaN exactly there."""
    if not DATA.is_dir():
        pytest.skip("../shared/data not found")
    samson = loadmat(DATA / "samson.mat")["samson"].astype(np.float32)[:40, :40, :24]
    framed, valid = _rotated_frame(samson, np.nan)
    result = api.encode(framed, None, bpppb=1.0, effort=1, tile=24)
    assert result.stats["tiles"] == 9 and result.stats["nodata_pixels"] == int((~valid).sum())
    dec = api.Decoder(result.data)
    full = dec.bands()
    assert np.isnan(full[~valid]).all() and np.isfinite(full[valid]).all()
    part = dec.bands([3, 1], window=(7, 43, 2, 30))
    assert np.array_equal(part, full[7:43, 2:30][:, :, [3, 1]], equal_nan=True)
    ev = api.evaluate(framed, result.data)
    assert ev["nodata_exact"] and abs(ev["psnr_band"] - result.psnr_band) < 1e-9


def test_inputs_without_metadata_unchanged(houston, tmp_path):
    """No sensor metadata, no nodata: no new chunk, the same bytes as before (tests/test_pinned.py pins them)."""
    result = api.encode(houston["cube"], houston["nm"], bpppb=0.3, effort=1)
    assert [c.type for c in read_chunks(result.data)] == ["HHDR", "meta", "BNDS", "WAVE", "MODL", "CODE", "HEND"]


def test_old_readers_skip_the_chunks(houston):
    cube = houston["cube"].copy()
    cube[:8] = 0
    result = api.encode(cube, houston["nm"], bpppb=0.3, effort=1, metadata={"map_info": MAP_INFO}, nodata=0)
    old = hnrfile.unpack(result.data)  # what a reader without smta/mask reads: the cube, fill values inside
    assert old.shape == cube.shape
    dec = api.Decoder(result.data)
    assert dec.metadata["map_info"] == MAP_INFO and dec.metadata["version"] == 1
    assert (dec.bands()[:8] == 0).all()
    # A damaged smta chunk (CRC right, content wrong) is a corrupt file.
    chunks = read_chunks(result.data)
    bad = [Chunk("smta", zjson({"version": "x"})) if c.type == "smta" else c for c in chunks]
    with pytest.raises(CorruptFileError):
        api.Decoder(write_chunks(bad))


def test_band_first_npy_refused_then_layout(houston, tmp_path):
    cube = houston["cube"][:, :, :40]  # 64 x 64 x 40: band-first it is 40 x 64 x 64
    np.save(tmp_path / "bf.npy", cube.transpose(2, 0, 1))
    line = one_line(run("encode", tmp_path / "bf.npy", "-o", tmp_path / "x.hnr", *FAST), 3)
    assert "--layout" in line
    assert not (tmp_path / "x.hnr").exists()
    assert run("encode", tmp_path / "bf.npy", "-o", tmp_path / "x.hnr", "--layout", "chw", *FAST).exit_code == 0
    np.save(tmp_path / "hwc.npy", cube)
    assert run("encode", tmp_path / "hwc.npy", "-o", tmp_path / "y.hnr", *FAST).exit_code == 0
    assert (tmp_path / "x.hnr").read_bytes() == (tmp_path / "y.hnr").read_bytes()
    np.save(tmp_path / "hcw.npy", cube.transpose(0, 2, 1))
    assert np.array_equal(cubeio.read_cube(tmp_path / "hcw.npy", layout="hcw").data, cube)
    # A wavelength vector whose length matches only the first axis settles it.
    np.savez(tmp_path / "bf.npz", cube=cube.transpose(2, 0, 1), wavelength_nm=houston["nm"][:40])
    got = cubeio.read_cube(tmp_path / "bf.npz")
    assert got.layout == "chw" and np.array_equal(got.data, cube)


def test_netcdf_band_first(houston, tmp_path):
    h5py = pytest.importorskip("h5py")
    cube = houston["cube"]
    with h5py.File(tmp_path / "emit.nc", "w") as f:  # NetCDF4 as netCDF-C writes it: dimension scales
        for name, n in (("bands", cube.shape[2]), ("downtrack", cube.shape[0]), ("crosstrack", cube.shape[1])):
            f.create_dataset(name, data=np.arange(n, dtype="f4"))
            f[name].make_scale(name)
        ds = f.create_dataset("radiance", data=cube.transpose(2, 0, 1), fillvalue=65535)
        ds.attrs["units"] = "uW/cm^2/SR/nm"
        ds.attrs["_FillValue"] = np.uint16(65535)
        for i, name in enumerate(("bands", "downtrack", "crosstrack")):
            ds.dims[i].attach_scale(f[name])
        f.create_dataset("sensor_band_parameters/wavelengths", data=houston["nm"])
        f.create_dataset("sensor_band_parameters/fwhm", data=np.full(48, 9.5))
    got = cubeio.read_cube(tmp_path / "emit.nc", key="radiance")
    assert got.layout == "chw" and np.array_equal(got.data, cube)
    assert np.allclose(got.wavelengths, houston["nm"])
    assert got.metadata["data_units"] == "uW/cm^2/SR/nm" and got.metadata["nodata"] == 65535
    assert got.metadata["bands"]["fwhm"] == [9.5] * 48
    assert run("encode", tmp_path / "emit.nc", "--key", "radiance", "-o", tmp_path / "e.hnr", *FAST).exit_code == 0
    dec = api.decode((tmp_path / "e.hnr").read_bytes())
    assert distortion(cube, dec).psnr_band > 40  # the bands as bands, not as image rows
    pytest.importorskip("h5netcdf")
    assert run("decode", tmp_path / "e.hnr", "-o", tmp_path / "back.nc").exit_code == 0
    back = cubeio.read_cube(tmp_path / "back.nc")
    assert back.layout == "chw" and np.array_equal(back.data, dec) and back.metadata["bands"]["fwhm"] == [9.5] * 48


def test_netcdf_classic_band_first(houston, tmp_path):
    from scipy.io import netcdf_file

    cube = houston["cube"][:32, :40].astype(np.int16)
    with netcdf_file(tmp_path / "classic.nc", "w") as nc:
        for name, n in (("wavelength", 48), ("y", 32), ("x", 40)):
            nc.createDimension(name, n)
        v = nc.createVariable("radiance", "h", ("wavelength", "y", "x"))
        v[:] = cube.transpose(2, 0, 1)
        v.units = "counts"
        w = nc.createVariable("wavelength", "d", ("wavelength",))
        w[:] = houston["nm"]
    got = cubeio.read_cube(tmp_path / "classic.nc", key="radiance")
    assert got.layout == "chw" and np.array_equal(got.data, cube) and np.allclose(got.wavelengths, houston["nm"])
    assert got.metadata["data_units"] == "counts"


def test_bad_geotiff_is_one_line(tmp_path):
    pytest.importorskip("rasterio")
    (tmp_path / "x.tif").write_bytes(b"II*\x00" + bytes(200))
    assert "x.tif" in one_line(run("encode", tmp_path / "x.tif", "-o", tmp_path / "x.hnr", *FAST), 3)


def _rotated_frame(cube: np.ndarray, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """The cube inside a 20-degree rotated frame of nodata, as an orthorectified swath looks."""
    h, w, c = cube.shape
    size = int(1.5 * max(h, w))
    big = np.zeros((size, size, c), np.float64)
    valid = np.zeros((size, size), bool)
    y0, x0 = (size - h) // 2, (size - w) // 2
    big[y0:y0 + h, x0:x0 + w] = cube
    valid[y0:y0 + h, x0:x0 + w] = True
    big = scipy.ndimage.rotate(big, 20, axes=(0, 1), reshape=False, order=0)
    valid = scipy.ndimage.rotate(valid.astype(np.uint8), 20, reshape=False, order=0).astype(bool)
    out = big.astype(cube.dtype)
    out[~valid] = fill
    return out, valid


def test_nan_border_float(tmp_path):
    if not DATA.is_dir():
        pytest.skip("../shared/data not found")
    samson = loadmat(DATA / "samson.mat")["samson"].astype(np.float32)[:64, :64, :40]
    framed, valid = _rotated_frame(samson, np.nan)
    np.save(tmp_path / "nan.npy", framed)
    r = json.loads(run("encode", tmp_path / "nan.npy", "-o", tmp_path / "n.hnr", *FAST, "--json").stdout)
    assert r["stats"]["nodata_pixels"] == int((~valid).sum())
    dec = api.decode((tmp_path / "n.hnr").read_bytes())
    assert np.isnan(dec[~valid]).all() and np.isfinite(dec[valid]).all()
    ev = json.loads(run("eval", tmp_path / "nan.npy", tmp_path / "n.hnr", "--json").stdout)
    assert ev["nodata_exact"] and abs(ev["psnr_band"] - r["psnr_band"]) < 1e-9
    # NaN in some bands of a pixel only is not nodata: refused, one line.
    framed[valid.nonzero()[0][0], valid.nonzero()[1][0], 3] = np.nan
    np.save(tmp_path / "partial.npy", framed)
    assert "NaN" in one_line(run("encode", tmp_path / "partial.npy", "-o", tmp_path / "p.hnr", *FAST), 3)


def test_nodata_option_integer(houston, tmp_path):
    framed, valid = _rotated_frame(houston["cube"], 0)
    framed[~valid] = 9  # a nodata value of the user's choosing
    np.save(tmp_path / "f.npy", framed)
    assert run("encode", tmp_path / "f.npy", "-o", tmp_path / "f.hnr", "--nodata", "9", *FAST).exit_code == 0
    dec = api.decode((tmp_path / "f.hnr").read_bytes())
    assert (dec[~valid] == 9).all()
    np.save(tmp_path / "all.npy", np.full((16, 16, 4), 9, np.uint16))
    assert "nodata" in one_line(run("encode", tmp_path / "all.npy", "-o", tmp_path / "a.hnr", "--nodata", "9",
                                    *FAST), 3)


def test_geotiff_round_trip(houston, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import Affine

    cube = houston["cube"].copy()
    cube[:, :5] = 0
    profile = dict(driver="GTiff", height=64, width=64, count=48, dtype="uint16", nodata=0,
                   crs=rasterio.crs.CRS.from_epsg(32615), transform=Affine(1.0, 0.0, 271860.0, 0.0, -1.0, 3290190.0))
    with rasterio.open(tmp_path / "enmap.tif", "w", **profile) as ds:
        ds.write(cube.transpose(2, 0, 1))
        ds.update_tags(wavelength_units="Nanometers", PROCESSING_LEVEL="L2A")
        for i in range(48):
            ds.update_tags(i + 1, wavelength=str(houston["nm"][i]), fwhm="6.5")
            ds.set_band_description(i + 1, f"band {i + 1}")
    got = cubeio.read_cube(tmp_path / "enmap.tif")
    assert np.array_equal(got.data, cube) and np.allclose(got.wavelengths, houston["nm"])
    assert run("encode", tmp_path / "enmap.tif", "-o", tmp_path / "g.hnr", *FAST).exit_code == 0
    info = json.loads(run("info", tmp_path / "g.hnr", "--json").stdout)
    assert "32615" in info["metadata"]["crs_wkt"] or "UTM zone 15N" in info["metadata"]["crs_wkt"]
    assert info["metadata"]["tags"]["dataset"]["PROCESSING_LEVEL"] == "L2A"
    assert run("decode", tmp_path / "g.hnr", "-o", tmp_path / "w.tif", "--window", "8:40,16:48",
               "--bands", "0-9").exit_code == 0
    with rasterio.open(tmp_path / "w.tif") as ds:
        assert ds.crs.to_epsg() == 32615 and ds.nodata == 0 and ds.count == 10
        assert ds.transform.c == 271860.0 + 16 and ds.transform.f == 3290190.0 - 8
        assert float(ds.tags(3)["wavelength"]) == houston["nm"][2] and ds.descriptions[2] == "band 3"
        assert ds.tags()["PROCESSING_LEVEL"] == "L2A"
    assert run("decode", tmp_path / "g.hnr", "-o", tmp_path / "all.tif").exit_code == 0
    back = cubeio.read_cube(tmp_path / "all.tif")
    assert (back.data[:, :5] == 0).all() and back.metadata["crs_wkt"] == got.metadata["crs_wkt"]
    assert back.metadata["bands"] == got.metadata["bands"] and back.metadata["nodata"] == 0
    # To ENVI: the transform as map info, the CRS as the coordinate system string.
    assert run("decode", tmp_path / "g.hnr", "-o", tmp_path / "e.hdr", "--window", "8:40,16:48").exit_code == 0
    e = cubeio.read_cube(tmp_path / "e.hdr")
    assert envi.map_info_transform(e.metadata["map_info"]) == [1.0, 0.0, 271876.0, 0.0, -1.0, 3290182.0]
    assert e.metadata["coordinate_system_string"] == got.metadata["crs_wkt"] and e.metadata["nodata"] == 0
    with rasterio.open(tmp_path / "e.img") as ds:  # GDAL reads hinerc's ENVI pair the same way
        assert ds.crs.to_epsg() == 32615 and ds.transform.c == 271876.0 and ds.nodata == 0
        assert np.array_equal(ds.read().transpose(1, 2, 0), e.data)


@pytest.mark.parametrize("case, code, words", [
    ("truncated", 3, "truncated"), ("no data file", 3, "data file is missing"), ("data type", 3, "data type"),
    ("complex", 3, "complex"), ("interleave", 3, "interleave"), ("layout", 2, "contradicts"),
    ("list length", 3, "values for"),
])
def test_bad_envi_inputs(houston, tmp_path, case, code, words):
    hdr = write_envi_by_hand(tmp_path, houston["cube"], houston["nm"], "bsq")
    text = hdr.read_text()
    extra = []
    if case == "truncated":
        img = tmp_path / "scene.img"
        img.write_bytes(img.read_bytes()[:1000])
    elif case == "no data file":
        (tmp_path / "scene.img").unlink()
    elif case == "data type":
        hdr.write_text(text.replace("data type = 12", "data type = 7"))
    elif case == "complex":
        hdr.write_text(text.replace("data type = 12", "data type = 6"))
    elif case == "interleave":
        hdr.write_text(text.replace("interleave = bsq", "interleave = bxp"))
    elif case == "layout":
        extra = ["--layout", "hwc"]
    elif case == "list length":
        hdr.write_text(text.replace("fwhm = {0.0134, ", "fwhm = {"))
    line = one_line(run("encode", hdr, "-o", tmp_path / "x.hnr", *extra, *FAST), code)
    assert words in line
    assert not (tmp_path / "x.hnr").exists()


def test_missing_rasterio_is_one_line(houston, tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_rasterio(name, *args, **kwargs):
        if name == "rasterio" or name.startswith("rasterio."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    (tmp_path / "x.tif").write_bytes(b"II*\x00" + bytes(100))
    monkeypatch.setattr(builtins, "__import__", no_rasterio)
    line = one_line(run("encode", tmp_path / "x.tif", "-o", tmp_path / "x.hnr", *FAST), 3)
    assert "rasterio" in line and "pip install" in line
    with pytest.raises(InputError, match="rasterio"):
        cubeio.write_cube(tmp_path / "o.tif", houston["cube"])


def test_nodata_files_decode_bit_for_bit_from_the_spec(houston):
    """tests/educational_decoder.py (HNR.md alone) and the library agree bit for bit on
    shape-adaptive files (MODL "nodata": 1): NaN border (float) and a nodata value (uint16)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import educational_decoder as ed

    if not DATA.is_dir():
        pytest.skip("../shared/data not found")
    samson = loadmat(DATA / "samson.mat")["samson"].astype(np.float32)[10:34, 20:50, ::6]
    framed, valid = _rotated_frame(samson, np.nan)
    data = api.encode(framed, None, bpppb=0.5, effort=1).data
    assert api.Decoder(data).file.model_config["nodata"] == 1
    assert np.array_equal(ed.decode_file(data), api.decode(data), equal_nan=True)
    assert np.array_equal(ed.decode_at(data, 0.37), api.interp(data, lambdas=[0.37])[:, :, 0], equal_nan=True)
    cube, valid = _rotated_frame(houston["cube"][:30, :26, ::5], 3)
    data = api.encode(cube, None, bpppb=0.6, effort=1, nodata=3).data
    got = ed.decode_file(data)
    assert np.array_equal(got, api.decode(data)) and (got[~valid] == 3).all()


def test_shape_adaptive_file_needs_its_mask(houston):
    cube, valid = _rotated_frame(houston["cube"][:32, :32, :8], 0)
    data = api.encode(cube, None, bpppb=0.5, effort=1, nodata=0).data
    chunks = read_chunks(data)
    without = write_chunks([c for c in chunks if c.type != "mask"])
    with pytest.raises(CorruptFileError, match="mask"):
        api.decode(without)


def test_interp_to_sensor_formats_carries_metadata(houston, tmp_path):
    """hinerc interp to ENVI (one band too) and NetCDF: the nm asked for (in the file's wavelength
    units), fwhm between the coded bands', the window's map info, nodata, the other header fields."""
    cube = houston["cube"].copy()
    cube[:4] = 0
    hdr = write_envi_by_hand(tmp_path, cube, houston["nm"], "bsq")
    assert run("encode", hdr, "-o", tmp_path / "s.hnr", *FAST).exit_code == 0
    src = cubeio.read_cube(hdr)
    nm = houston["nm"]
    want = [float(nm[3]), 0.5 * float(nm[10] + nm[11])]
    assert run("interp", tmp_path / "s.hnr", "--nm", f"{want[0]!r},{want[1]!r}", "-o", tmp_path / "i.hdr",
               "--window", "2:40,5:30").exit_code == 0
    got = cubeio.read_cube(tmp_path / "i.hdr")
    assert got.data.shape == (38, 25, 2) and (got.data[:2] == 0).all()
    assert np.allclose(got.wavelengths, want)
    wl = src.metadata["bands"]["wavelength"]  # micrometres in the header
    assert np.allclose(got.metadata["bands"]["wavelength"], [wl[3], 0.5 * (wl[10] + wl[11])])
    assert got.metadata["wavelength_units"] == src.metadata["wavelength_units"]
    fwhm = src.metadata["bands"]["fwhm"]
    assert np.allclose(got.metadata["bands"]["fwhm"], [fwhm[3], 0.5 * (fwhm[10] + fwhm[11])])
    assert got.metadata["nodata"] == 0 and got.metadata["coordinate_system_string"] == CS
    parts = envi.split_list(got.metadata["map_info"])
    assert float(parts[3]) == 271860.0 + 5 and float(parts[4]) == 3290190.0 - 2
    assert {k: v for k, v in got.metadata.get("envi", {}).items()} == src.metadata.get("envi", {})
    assert run("interp", tmp_path / "s.hnr", "--nm", "600", "-o", tmp_path / "one.hdr").exit_code == 0
    one = cubeio.read_cube(tmp_path / "one.hdr")
    assert one.data.shape == (64, 64, 1) and np.allclose(one.wavelengths, [600.0])
    h5netcdf = pytest.importorskip("h5netcdf")
    assert run("interp", tmp_path / "s.hnr", "--nm", "500,600", "-o", tmp_path / "i.nc").exit_code == 0
    with h5netcdf.File(tmp_path / "i.nc", "r") as nc:  # the wavelength coordinate in the file's own units
        assert nc.variables["cube"].shape == (2, 64, 64)
        assert np.allclose(nc.variables["wavelength"][...], [0.5, 0.6])
        assert nc.variables["wavelength"].attrs["units"] == src.metadata["wavelength_units"]
    assert np.allclose(cubeio.read_cube(tmp_path / "i.nc").wavelengths, [500.0, 600.0])  # its units read back


def test_mask_chunk_versions():
    """`mask` version 2 (edges against the row above) round-trips any mask; version 1 (run lengths,
    hinerc 0.5.0) still reads; damaged edge lists are corrupt, one error each."""
    from hinercodec.formats import metadata
    from hinercodec.formats.hnrfile import zstd_frame

    rng = np.random.default_rng(2)
    frame = _rotated_frame(np.ones((40, 30, 1), np.float32), 0)[1]
    for valid in (rng.random((9, 13)) > 0.5, frame, np.ones((3, 4), bool), np.eye(5, dtype=bool)):
        chunk = metadata.mask_chunk(valid)
        assert chunk.data[0] == 2 and np.array_equal(metadata._mask_from(chunk.data, *valid.shape), valid)
    flat = frame.reshape(-1)
    edges = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    runs = np.concatenate([[0], np.diff(edges)]) if flat[0] else np.diff(edges)
    old = bytes([1]) + zstd_frame(runs.astype("<u4").tobytes())
    assert np.array_equal(metadata._mask_from(old, *frame.shape), frame)
    assert len(metadata.mask_chunk(frame).data) < 0.7 * len(old)
    for raw in (bytes([1, 0, 0]),  # row 0: one edge (odd)
                bytes([4, 6, 1]),  # row 0: edges 3 then 2 (not increasing)
                bytes([4, 2, 2, 0])):  # a byte after the last row
        with pytest.raises(CorruptFileError):
            metadata._mask_from(bytes([2]) + zstd_frame(raw), 1, 8)
