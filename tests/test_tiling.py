"""Tiled files (format 2.0): the grid, the container, random access, and tiled encodes of real scenes."""
from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from hinercodec import api, tiling
from hinercodec.cli.main import main
from hinercodec.errors import CorruptFileError, UnsupportedFileError
from hinercodec.formats import cubeio, hnrfile, tiled
from hinercodec.metrics import distortion

pytestmark = pytest.mark.slow  # tiles of real networks: minutes on two cores

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HOUSTON = DATA / "houston2018_crop.mat"
READ_ERRORS = (CorruptFileError, UnsupportedFileError)


def needs_data() -> None:
    if not HOUSTON.exists():
        pytest.skip("../shared/data not found")


@pytest.mark.parametrize("h,w,tile", [(128, 128, 64), (100, 37, 32), (5, 700, 512), (64, 64, 64), (65, 64, 64)])
def test_grid_covers_the_image_with_near_equal_tiles(h, w, tile):
    g = tiled.TileGrid.split(h, w, tile)
    covered = np.zeros((h, w), int)
    for i in range(len(g)):
        y0, y1, x0, x1 = g.rect(i)
        assert 0 < y1 - y0 <= tile and 0 < x1 - x0 <= tile
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all()
    sizes = np.diff(g.y_edges)
    assert sizes.max() - sizes.min() <= 1


@pytest.mark.parametrize("overlap", [0, 3, 8])
def test_blending_weights_sum_to_one(overlap):
    g = tiled.TileGrid.split(100, 90, 30, overlap)
    total = np.zeros((100, 90))
    for i in range(len(g)):
        y0, y1, x0, x1 = g.fit_rect(i)
        wy, wx = g.weights(i)
        assert wy.shape == (y1 - y0,) and wx.shape == (x1 - x0,) and wy.min() >= 0
        total[y0:y1, x0:x1] += np.outer(wy, wx)
    assert np.allclose(total, 1.0)


def test_touching_lists_exactly_the_tiles_under_a_window():
    g = tiled.TileGrid.split(100, 90, 30)  # 4 x 3 tiles
    assert g.touching(0, 100, 0, 90) == list(range(len(g)))
    assert g.touching(0, 1, 0, 1) == [0]
    y0, y1, x0, x1 = g.rect(5)
    assert g.touching(y0, y1, x0, x1) == [5]
    assert g.touching(y1 - 1, y1 + 1, x0, x0 + 1) == [5, 8]


@pytest.fixture(scope="module")
def tiled_file():
    """A real tiled file: a 40 x 36 x 12 crop of Houston in 2 x 2 tiles, few epochs."""
    needs_data()
    cube = cubeio.read_cube(HOUSTON)
    crop = np.ascontiguousarray(cube.data[:40, :36, ::4])
    result = api.encode(crop, cube.wavelengths[::4], api.EncodeOptions(bpppb=4.0, model="latent", epochs=40, tile=20))
    return crop, result


def test_tiled_encode_meets_the_rate_and_decodes(tiled_file):
    crop, result = tiled_file
    assert result.stats["tiles"] == 4 and result.stats["grid"] == [2, 2]
    assert 3.6 <= result.bpppb <= 4.0
    decoded = api.decode(result.data)
    assert decoded.dtype == crop.dtype and decoded.shape == crop.shape
    assert abs(distortion(crop, decoded).psnr_band - result.psnr_band) < 1e-9
    info = api.info(result.data)
    assert info["format_version"] == "2.0" and info["tiles"]["grid"] == [2, 2]


def test_window_reads_only_its_tiles(tiled_file):
    crop, result = tiled_file
    full = api.decode(result.data)
    dec = api.Decoder(io.BytesIO(result.data))
    assert dec.tile_reads == 0 and dec.grid.overlap > 0
    part = dec.bands([0, 5], window=(0, 6, 1, 7))  # inside tile 0, out of its neighbours' reach
    assert dec.tile_reads == 1 and np.array_equal(part, full[0:6, 1:7][:, :, [0, 5]])
    part = dec.bands(window=(30, 40, 30, 36))  # tile 3 only
    assert dec.tile_reads == 2 and np.array_equal(part, full[30:40, 30:36])
    part = dec.bands(window=(15, 25, 30, 36))  # tiles 1 and 3 overlap here (1 is read now)
    assert dec.tile_reads == 3 and np.array_equal(part, full[15:25, 30:36])
    t = dec.file.band_positions()[[2, 7]]
    assert np.array_equal(dec.at(t, window=(0, 40, 0, 36)), full[:, :, [2, 7]])


def test_window_outside_the_image_is_a_request_error(tiled_file):
    from hinercodec.errors import RequestError

    dec = api.Decoder(tiled_file[1].data)
    for window in [(0, 41, 0, 10), (5, 5, 0, 10), (-1, 3, 0, 3)]:
        with pytest.raises(RequestError, match="not inside"):
            dec.bands(window=window)


def test_a_one_x_reader_refuses_a_tiled_file(tiled_file):
    with pytest.raises(UnsupportedFileError):
        hnrfile.unpack(tiled_file[1].data)


def test_every_bit_flip_of_a_tiled_file_is_detected():
    needs_data()
    data = _two_tile_file(np.ascontiguousarray(cubeio.read_cube(HOUSTON).data[:12, :12, :3]))
    assert len(data) < 3000
    buf = bytearray(data)
    for pos in range(len(buf)):
        for bit in (0, 3, 7):
            buf[pos] ^= 1 << bit
            with pytest.raises(READ_ERRORS):
                tiled.unpack_tiled(bytes(buf))
            buf[pos] ^= 1 << bit
    for n in range(0, len(data), 7):
        with pytest.raises(READ_ERRORS):
            tiled.unpack_tiled(data[:n])


def _two_tile_file(cube: np.ndarray) -> bytes:
    """A small 2-tile file whose tiles hold quantised real values of the cube (the container's test:
    what the tensors mean does not matter here, only that every byte is checked)."""
    from hinercodec.codecs.networks.quant import quantize_array

    tiles = [tiled.Tile({"model": "latent", "tile": i},
                        [quantize_array(cube[:, 6 * i:6 * i + 6, b].astype(np.float64), 8, False) for b in range(2)])
             for i in range(2)]
    lo, hi = cube.min(axis=(0, 1)).astype(np.float32), cube.max(axis=(0, 1)).astype(np.float32)
    head = tiled.TiledHead(height=12, width=12, bands=3, dtype=cube.dtype, band_offset=lo, band_scale=hi - lo,
                           wavelengths=None, grid=tiled.TileGrid((0, 12), (0, 6, 12)), meta={"encoder": "test"})
    return tiled.pack_tiled(head, tiles)


def test_random_access_reader_checks_what_it_reads():
    needs_data()
    data = _two_tile_file(np.ascontiguousarray(cubeio.read_cube(HOUSTON).data[:12, :12, :3]))
    reader = tiled.TiledReader(io.BytesIO(data))
    assert reader.tile(1).model_config["model"] == "latent" and reader.reads == 1
    off, length = reader.head.entries[1]
    broken = bytearray(data)
    broken[off + 20] ^= 1
    with pytest.raises(CorruptFileError, match="checksum"):
        tiled.TiledReader(io.BytesIO(bytes(broken))).tile(1)
    tiled.TiledReader(io.BytesIO(bytes(broken))).tile(0)  # the other tile is still readable
    with pytest.raises(CorruptFileError, match="truncated"):
        tiled.TiledReader(io.BytesIO(data[:off + 10]))


def test_encode_file_reads_an_hdf5_cube_tile_by_tile(tmp_path, monkeypatch):
    needs_data()
    cube = cubeio.read_cube(HOUSTON)
    src = tmp_path / "scene.h5"
    with h5py.File(src, "w") as h5:
        h5["cube"] = cube.data[:48, :40, ::6]
    reads = []
    real = cubeio.CubeReader.read

    def counting(self, y0, y1, x0, x1):
        reads.append((y0, y1, x0, x1))
        return real(self, y0, y1, x0, x1)

    monkeypatch.setattr(cubeio.CubeReader, "read", counting)
    from hinercodec.scene import encode_file

    summary, data = encode_file(str(src), str(tmp_path / "s.hnr"),
                                api.EncodeOptions(bpppb=4.0, model="latent", epochs=20, tile=24))
    assert summary["stats"]["tiles"] == 4 and (tmp_path / "s.hnr").read_bytes() == data
    reach = 24 + 2 * tiling.OVERLAP  # a tile's core and the overlap on both sides
    assert reads and all((y1 - y0) <= reach and (x1 - x0) <= reach for y0, y1, x0, x1 in reads)
    assert np.array_equal(api.decode(data).shape, (48, 40, 8))


def test_cli_window_decode_and_interp_of_a_tiled_file(tiled_file, tmp_path):
    crop, result = tiled_file
    path = tmp_path / "t.hnr"
    path.write_bytes(result.data)
    runner = CliRunner()
    out = tmp_path / "w.npy"
    r = runner.invoke(main, ["decode", str(path), "--window", "10:30,5:33", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.load(out), api.decode(result.data)[10:30, 5:33])
    r = runner.invoke(main, ["decode", str(path), "--bands", "3,1", "-o", str(tmp_path / "full.npy")])
    assert r.exit_code == 0, r.output  # written a row of tiles at a time: same bytes as np.save
    expected = io.BytesIO()
    np.save(expected, api.decode(result.data, bands=[3, 1]))
    assert (tmp_path / "full.npy").read_bytes() == expected.getvalue()
    r = runner.invoke(main, ["interp", str(path), "--lambda", "0.5,0.25", "--window", "0:40,0:36", "-o",
                             str(tmp_path / "i.npy")])
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "i.npy").shape == (40, 36, 2)
    r = runner.invoke(main, ["decode", str(path), "--window", "0:50,0:10", "-o", str(tmp_path / "x.npy")])
    assert r.exit_code == 7 and "not inside" in r.output
    r = runner.invoke(main, ["decode", str(path), "--window", "10:5,0:10", "-o", str(tmp_path / "y.npy")])
    assert r.exit_code == 2
    r = runner.invoke(main, ["info", str(path), "--json"])
    assert r.exit_code == 0 and '"tiles"' in r.output


def test_transform_tiles_decode_the_same_in_threads_and_are_let_go():
    """A tiled transform file: its strip's tile models built in two threads give the same cube as one
    thread; a whole-image decode keeps only the tiles its last strip needs (the first row is read
    again when asked), and forget() lets go of the rest."""
    needs_data()
    cube = cubeio.read_cube(HOUSTON)
    crop = np.ascontiguousarray(cube.data[:60, :50, ::3])
    result = api.encode(crop, cube.wavelengths[::3], api.EncodeOptions(bpppb=1.0, tile=20, effort=1))
    assert result.stats["grid"] == [3, 3]
    one, two = api.Decoder(io.BytesIO(result.data)), api.Decoder(io.BytesIO(result.data))
    one.THREADS = 1
    full = two.bands()
    assert np.array_equal(one.bands(), full) and two.tile_reads == 9
    assert np.array_equal(two.bands(window=(50, 60, 0, 50)), full[50:60]) and two.tile_reads == 9  # kept
    assert np.array_equal(two.bands(window=(0, 5, 0, 5)), full[0:5, 0:5]) and two.tile_reads == 10  # let go
    two.forget()
    assert np.array_equal(two.bands(window=(50, 60, 0, 5)), full[50:60, 0:5]) and two.tile_reads > 10


def test_transform_tiles_reuse_the_memory_of_tiles_let_go(monkeypatch):
    """A whole-image decode lets each row of tile models go before it builds the next row, whose
    models decode into the memory the first ones gave back (memory.Spare): the same values as
    models built in fresh memory (a new decoder for every row). bands(out=) decodes into the
    caller's array."""
    from hinercodec.memory import Spare

    needs_data()
    cube = cubeio.read_cube(HOUSTON)
    crop = np.ascontiguousarray(cube.data[:60, :50, ::3])
    data = api.encode(crop, cube.wavelengths[::3], api.EncodeOptions(bpppb=1.0, tile=20, effort=1)).data
    fresh = np.concatenate([api.Decoder(data).bands(window=(y, y + 20, 0, 50)) for y in (0, 20, 40)])
    taken = []
    take = Spare.take

    def counting(self, shape, dtype):
        found = take(self, shape, dtype)
        taken.append((np.dtype(dtype).kind, found is not None))
        return found

    monkeypatch.setattr(Spare, "take", counting)
    dec = api.Decoder(io.BytesIO(data))
    assert np.array_equal(dec.bands(), fresh)
    assert taken.count(("f", True)) == 6  # component images: rows 2 and 3 in the memory of rows 1 and 2
    # coefficients: in the memory of an earlier model of the same shape, as the two threads that
    # build a row happen to give it back (of the row's three buffers, the last two given are kept:
    # at least one of the two 20 x 20 tiles')
    assert taken.count(("i", True)) >= 1
    buffer = np.full((80, 50, crop.shape[2]), 7, crop.dtype)
    strip = api.Decoder(data).bands(window=(20, 40, 0, 50), out=buffer[:20])
    assert np.shares_memory(strip, buffer) and np.array_equal(buffer[:20], fresh[20:40])
    assert (buffer[20:] == 7).all()
    with pytest.raises(ValueError, match="C-contiguous"):
        api.Decoder(data).bands(window=(20, 40, 0, 50), out=buffer[:21])


@pytest.mark.parametrize("values", [1, 5 * 50 * 16, 1 << 40])
def test_transform_tiles_render_by_bands_of_rows(values, monkeypatch):
    """A tiled transform file's strips are rendered by bands of rows (decoder.RENDER_VALUES values
    at a time): the same cube and windows, whatever the band's height (one row, a few, the strip)."""
    from hinercodec import decoder as decoder_mod

    needs_data()
    cube = cubeio.read_cube(HOUSTON)
    crop = np.ascontiguousarray(cube.data[:60, :50, ::3])
    data = api.encode(crop, cube.wavelengths[::3], api.EncodeOptions(bpppb=1.0, tile=20, effort=1)).data
    ref_full = api.Decoder(io.BytesIO(data)).bands()
    ref_window = api.Decoder(io.BytesIO(data)).bands([3, 0], window=(7, 41, 5, 33))
    monkeypatch.setattr(decoder_mod, "RENDER_VALUES", values)
    assert np.array_equal(api.Decoder(io.BytesIO(data)).bands(), ref_full)
    assert np.array_equal(api.Decoder(io.BytesIO(data)).bands([3, 0], window=(7, 41, 5, 33)), ref_window)


def test_transform_tiles_side_by_side() -> None:
    """The transform codec's tiles do not overlap (each codes its own pixels once; a tile measures
    its own distortion); the networks' tiles overlap and are blended."""
    assert tiling.grid_of((100, 100, 10), 32, "transform").overlap == 0
    assert tiling.grid_of((100, 100, 10), 32, "hiner").overlap == tiling.OVERLAP
