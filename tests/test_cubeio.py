"""Cube readers/writers on the real scenes in ../shared/data: every format, every failure a user can cause."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from hinercodec.errors import InputError, OutputError, OutputExistsError
from hinercodec.formats import cubeio
from hinercodec.formats.cubeio import (atomic_write_bytes, parse_wavelengths, read_cube, read_input_bytes,
                                       write_cube, write_npy_stream)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def data() -> Path:
    if not DATA.is_dir():
        pytest.skip("../shared/data not found")
    return DATA


@pytest.fixture(scope="module")
def samson(data: Path) -> np.ndarray:
    return scipy.io.loadmat(data / "samson.mat")["samson"]


@pytest.fixture(scope="module")
def houston(data: Path) -> np.ndarray:
    return scipy.io.loadmat(data / "houston2018_crop.mat")["houston"]


def one_line_error(exc_type: type, fn, *args, **kwargs) -> str:
    """Run fn, expect exc_type, and check that its message is a single line; return it."""
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def feed_stdin(monkeypatch: pytest.MonkeyPatch, payload: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))


# ------------------------------------------------------------------------------------- real scenes


def test_samson_v5_float32_with_wavelengths(data: Path, samson: np.ndarray) -> None:
    cube = read_cube(data / "samson.mat")
    assert cube.data.shape == (95, 95, 156) and cube.data.dtype == np.float32
    assert cube.data.flags.c_contiguous and np.array_equal(cube.data, samson)
    assert cube.key == "samson" and cube.source == str(data / "samson.mat")
    assert cube.wavelengths.dtype == np.float64 and cube.wavelengths.shape == (156,)
    assert cube.wavelengths[0] == 401 and cube.wavelengths[-1] == 889
    assert np.all(np.diff(cube.wavelengths) > 0)


def test_houston_v5_uint16(data: Path, houston: np.ndarray) -> None:
    cube = read_cube(data / "houston2018_crop.mat")
    assert cube.data.shape == (128, 128, 48) and cube.data.dtype == np.uint16
    assert np.array_equal(cube.data, houston) and cube.key == "houston"
    assert cube.wavelengths[0] == 380 and cube.wavelengths[-1] == 1050


@pytest.mark.parametrize("name, shape, dtype", [("pavia_centre_crop_v73.mat", (100, 100, 102), np.float64),
                                                ("muufl_crop_v73.mat", (100, 100, 64), np.float32)])
def test_matlab_v73_axes_reversed(data: Path, name: str, shape: tuple, dtype: type) -> None:
    cube = read_cube(data / name)
    with h5py.File(data / name, "r") as h5:
        manual = np.transpose(h5["data"][()], (2, 1, 0))
    assert cube.data.shape == shape and cube.data.dtype == dtype and cube.key == "data"
    assert cube.data.flags.c_contiguous and np.array_equal(cube.data, manual)
    assert cube.wavelengths is None  # "groundtruth" (2-D) is neither the cube nor wavelengths


def test_cave_hdf5_uint16_with_wavelengths(data: Path) -> None:
    cube = read_cube(data / "cave_balloons.h5")
    with h5py.File(data / "cave_balloons.h5", "r") as h5:
        stored = h5["cube"][()]
    assert cube.data.shape == (512, 640, 20) and cube.data.dtype == np.uint16
    assert np.array_equal(cube.data, stored) and cube.key == "cube"
    assert np.array_equal(cube.wavelengths, np.arange(400, 600, 10, dtype=np.float64))


def test_extension_that_lies(data: Path, tmp_path: Path) -> None:
    (tmp_path / "v73.h5").write_bytes((data / "pavia_centre_crop_v73.mat").read_bytes())
    (tmp_path / "v5.npy").write_bytes((data / "samson.mat").read_bytes())
    (tmp_path / "plain.mat").write_bytes((data / "cave_balloons.h5").read_bytes())
    assert read_cube(tmp_path / "v73.h5").data.shape == (100, 100, 102)
    assert read_cube(tmp_path / "v5.npy").data.shape == (95, 95, 156)
    assert read_cube(tmp_path / "plain.mat").data.shape == (512, 640, 20)  # no MATLAB header: as stored


# ------------------------------------------------------------------------------- choosing variables


def test_key_choice(data: Path) -> None:
    assert read_cube(data / "samson.mat", key="samson").key == "samson"
    assert read_cube(data / "pavia_centre_crop_v73.mat", key="data").data.shape == (100, 100, 102)
    message = one_line_error(InputError, read_cube, data / "samson.mat", key="labels")
    assert "'labels' is 2-D (95 x 95); a cube must be H x W x C" in message
    message = one_line_error(InputError, read_cube, data / "samson.mat", key="nope")
    assert "'nope'" in message and "samson (95 x 95 x 156 float32)" in message


def test_ambiguous_file_lists_candidates(houston: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "two.npz"
    np.savez(path, first=houston, second=houston[:, :, :10])
    message = one_line_error(InputError, read_cube, path)
    assert "first (128 x 128 x 48 uint16)" in message and "second" in message and "--key" in message
    assert read_cube(path, key="second").data.shape == (128, 128, 10)


def test_no_cube_in_file(data: Path) -> None:
    message = one_line_error(InputError, read_cube, data / "standard_label_maps.npz")
    assert "no 3-D numeric array" in message and "indian_pines_gt (145 x 145 uint8)" in message


def test_nested_hdf5_groups_and_matlab_class(houston: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "nested.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("scene/radiance", data=houston)
        h5.create_dataset("scene/meta/Wavelength", data=np.linspace(380, 1050, 48))
        h5.create_dataset("scene/mask", data=np.zeros((128, 128), np.uint8))
        reversed_ds = h5.create_dataset("matlab/cube", data=houston.T)
        reversed_ds.attrs["MATLAB_class"] = np.bytes_("uint16")
    message = one_line_error(InputError, read_cube, path)
    assert "scene/radiance" in message and "matlab/cube (128 x 128 x 48 uint16)" in message
    cube = read_cube(path, key="/scene/radiance")
    assert cube.key == "scene/radiance" and np.array_equal(cube.data, houston)
    assert cube.wavelengths[0] == 380 and cube.wavelengths.size == 48
    assert np.array_equal(read_cube(path, key="matlab/cube").data, houston)


# -------------------------------------------------------------------------------------- wavelengths


def test_wavelength_choices(data: Path) -> None:
    path = data / "cave_balloons.h5"
    assert np.array_equal(read_cube(path, wavelengths="wavelength_nm").wavelengths, np.arange(400, 600, 10))
    explicit = read_cube(path, wavelengths=list(range(590, 390, -10))).wavelengths
    assert explicit.dtype == np.float64 and explicit[0] == 590
    assert "20 bands" in one_line_error(InputError, read_cube, path, wavelengths=[1.0, 2.0])
    assert "strictly" in one_line_error(InputError, read_cube, path, wavelengths=[400.0] * 20)
    bad = np.arange(400, 600, 10, dtype=float)
    bad[3] = np.nan
    assert "NaN" in one_line_error(InputError, read_cube, path, wavelengths=bad)
    assert "'nope'" in one_line_error(InputError, read_cube, path, wavelengths="nope")
    assert "1-D" in one_line_error(InputError, read_cube, path, wavelengths="cube")
    assert "wavelengths" in one_line_error(InputError, read_cube, data / "samson.mat", wavelengths="labels")


def test_parse_wavelengths(tmp_path: Path) -> None:
    assert np.array_equal(parse_wavelengths("400:10:590"), np.arange(400, 600, 10))
    assert np.array_equal(parse_wavelengths("590:-10:400"), np.arange(590, 390, -10))
    assert np.array_equal(parse_wavelengths(" 400, 410.5 ,420"), [400, 410.5, 420])
    (tmp_path / "wl.txt").write_text("# nm\n400 410\n420,430\n")
    np.save(tmp_path / "wl.npy", np.array([[500.0, 600.0]]))
    assert np.array_equal(parse_wavelengths(str(tmp_path / "wl.txt")), [400, 410, 420, 430])
    assert np.array_equal(parse_wavelengths(str(tmp_path / "wl.npy")), [500, 600])
    for bad in ["400:7:590", "400:0:500", "400:10", "a,b", "", "400,400", "410,400,420", "1,nan",
                str(tmp_path / "missing.txt")]:
        one_line_error(InputError, parse_wavelengths, bad)


# --------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("case, expected", [
    ("2d", "is 2-D (95 x 95); a cube must be H x W x C"),
    ("4d", "is 4-D (95 x 95 x 156 x 1)"),
    ("nan", "has 3 NaN and 0 Inf values; the first at row 2, column 5, band 7"),
    ("inf", "has 0 NaN and 2 Inf values; the first at row 90, column 0, band 155"),
    ("complex", "is complex (complex64)"),
    ("empty", "is empty (0 x 95 x 156)"),
    ("bool", "not numeric"),
])
def test_invalid_arrays(samson: np.ndarray, tmp_path: Path, case: str, expected: str) -> None:
    array = {
        "2d": samson[:, :, 0],
        "4d": samson[..., None],
        "complex": samson.astype(np.complex64),
        "empty": samson[:0],
        "bool": samson > 0.5,
    }.get(case, samson.copy())
    if case == "nan":
        array[2, 5, 7] = array[40, 3, 0] = array[94, 94, 155] = np.nan
    if case == "inf":
        array[90, 0, 155], array[94, 1, 0] = np.inf, -np.inf
    np.save(tmp_path / "x.npy", array)
    assert expected in one_line_error(InputError, read_cube, tmp_path / "x.npy")


def test_complex_matlab_v5(samson: np.ndarray, tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "c.mat", {"cube": samson * (1 + 1j)})  # whosmat reports it as 'double'
    assert "is complex" in one_line_error(InputError, read_cube, tmp_path / "c.mat")


def test_unreadable_files(data: Path, tmp_path: Path) -> None:
    assert "No such file" in one_line_error(InputError, read_cube, tmp_path / "missing.mat")
    (tmp_path / "garbage.mat").write_bytes(bytes(range(256)) * 40)
    assert "not a cube file" in one_line_error(InputError, read_cube, tmp_path / "garbage.mat")
    (tmp_path / "empty.h5").write_bytes(b"")
    assert "empty" in one_line_error(InputError, read_cube, tmp_path / "empty.h5")
    assert str(tmp_path) in one_line_error(InputError, read_cube, tmp_path)  # a directory


@pytest.mark.parametrize("name", ["cave_balloons.h5", "pavia_centre_crop_v73.mat", "samson.mat",
                                  "standard_label_maps.npz"])
@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.99])
def test_truncated_files(data: Path, tmp_path: Path, name: str, fraction: float) -> None:
    content = (data / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(content[: int(len(content) * fraction)])
    assert str(path) in one_line_error(InputError, read_cube, path)


def test_truncated_npy(houston: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", houston)
    content = (tmp_path / "x.npy").read_bytes()
    for cut in (20, 200, len(content) - 1):
        (tmp_path / "t.npy").write_bytes(content[:cut])
        one_line_error(InputError, read_cube, tmp_path / "t.npy")


# -------------------------------------------------------------------------------------------- stdin


@pytest.mark.parametrize("name, shape", [("samson.mat", (95, 95, 156)), ("pavia_centre_crop_v73.mat", (100, 100, 102)),
                                         ("cave_balloons.h5", (512, 640, 20))])
def test_stdin_detection_real_files(data: Path, monkeypatch: pytest.MonkeyPatch, name: str, shape: tuple) -> None:
    feed_stdin(monkeypatch, (data / name).read_bytes())
    cube = read_cube("-")
    assert cube.data.shape == shape and cube.source == "-"
    assert np.array_equal(cube.data, read_cube(data / name).data)


def test_stdin_npy_npz_and_garbage(houston: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    for save in (np.save, lambda f, a: np.savez_compressed(f, hs=a)):
        buffer = io.BytesIO()
        save(buffer, houston)
        feed_stdin(monkeypatch, buffer.getvalue())
        assert np.array_equal(read_cube("-").data, houston)
    feed_stdin(monkeypatch, b"hello, this is not a cube")
    assert "stdin" in one_line_error(InputError, read_cube, "-")
    feed_stdin(monkeypatch, b"")
    assert "stdin is empty" in one_line_error(InputError, read_cube, "-")


def test_read_input_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f.hnr").write_bytes(b"abc")
    assert read_input_bytes(tmp_path / "f.hnr") == b"abc"
    feed_stdin(monkeypatch, b"\x00\x01")
    assert read_input_bytes("-") == b"\x00\x01"
    assert "No such file" in one_line_error(InputError, read_input_bytes, tmp_path / "none.hnr")


# ------------------------------------------------------------------------------------------ writing


@pytest.mark.parametrize("ext", [".npy", ".npz", ".mat", ".h5", ".hdf5"])
@pytest.mark.parametrize("scene", ["samson.mat", "houston2018_crop.mat", "pavia_centre_crop_v73.mat"])
def test_write_round_trip(data: Path, tmp_path: Path, ext: str, scene: str) -> None:
    original = read_cube(data / scene)
    wavelengths = original.wavelengths if original.wavelengths is not None else np.linspace(430, 860, 102)
    path = tmp_path / ("out" + ext)
    write_cube(path, original.data, wavelengths, key="hsi")
    back = read_cube(path)
    assert back.data.dtype == original.data.dtype and np.array_equal(back.data, original.data)
    if ext == ".npy":
        assert back.wavelengths is None
    else:
        assert back.key == "hsi" and np.array_equal(back.wavelengths, wavelengths)


def test_write_mat73_branch(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = read_cube(data / "houston2018_crop.mat")
    path = tmp_path / "direct.mat"
    cubeio._write_mat73(path, original.data, original.wavelengths, "houston")
    assert path.read_bytes().startswith(b"MATLAB 7.3 MAT-file")
    with h5py.File(path, "r") as h5:
        assert h5.userblock_size == 512 and h5["houston"].shape == (48, 128, 128)
        assert h5["houston"].attrs["MATLAB_class"] == b"uint16"
    back = read_cube(path)
    assert back.data.dtype == np.uint16 and np.array_equal(back.data, original.data)
    assert np.array_equal(back.wavelengths, original.wavelengths)
    # The dispatch in write_cube: a cube over the v5 size limit goes to v7.3.
    monkeypatch.setattr(cubeio, "_MAT5_MAX_BYTES", 1000)
    write_cube(tmp_path / "big.mat", original.data, key="houston")
    with h5py.File(tmp_path / "big.mat", "r") as h5:
        assert h5["houston"].shape == (48, 128, 128)
    assert np.array_equal(read_cube(tmp_path / "big.mat").data, original.data)


def test_write_refusals(houston: np.ndarray, tmp_path: Path) -> None:
    assert ".npz" in one_line_error(InputError, write_cube, tmp_path / "x.png", houston)  # .tif is GeoTIFF since 0.6
    assert "2-D" in one_line_error(InputError, write_cube, tmp_path / "x.npy", houston[:, :, 0])
    assert "48 bands" in one_line_error(InputError, write_cube, tmp_path / "x.h5", houston, [1.0, 2.0])
    assert "MATLAB" in one_line_error(InputError, write_cube, tmp_path / "x.mat", houston, key="2bad")
    one_line_error(InputError, write_cube, tmp_path / "x.mat", houston.astype(np.float16))
    # An output that cannot be written is an OutputError (exit 9), not a bad input cube (3).
    assert "does not exist" in one_line_error(OutputError, write_cube, tmp_path / "missing_dir" / "x.npy", houston)
    (tmp_path / "dir.npy").mkdir()
    assert "is a directory" in one_line_error(OutputError, write_cube, tmp_path / "dir.npy", houston, force=True)
    (tmp_path / "dir.npy").rmdir()
    assert list(tmp_path.iterdir()) == []


def test_no_overwrite_without_force(houston: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    write_cube(path, houston)
    assert "--force" in one_line_error(OutputExistsError, write_cube, path, houston[:, :, :2])
    write_cube(path, houston[:, :, :2], force=True)
    assert read_cube(path).data.shape == (128, 128, 2)
    atomic_write_bytes(tmp_path / "f.hnr", b"one")
    one_line_error(OutputExistsError, atomic_write_bytes, tmp_path / "f.hnr", b"two")
    atomic_write_bytes(tmp_path / "f.hnr", b"two", force=True)
    assert (tmp_path / "f.hnr").read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.hnr", "x.npy"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError, OSError(28, "No space left on device")])
def test_atomic_write_leaves_nothing(houston: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     error: BaseException) -> None:
    def half_then_fail(file: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        file.write(b"MATLAB 5.0 MAT-file, partial")
        raise error

    monkeypatch.setattr(scipy.io, "savemat", half_then_fail)
    # A failed write (h5py raises RuntimeError as well as OSError on a full disk) is one OutputError line.
    expected = error if error is KeyboardInterrupt else OutputError
    with pytest.raises(expected):
        write_cube(tmp_path / "x.mat", houston)
    assert list(tmp_path.iterdir()) == []
    # With --force over an existing file, a failed write keeps the old file untouched.
    (tmp_path / "x.mat").write_bytes(b"old")
    with pytest.raises(expected):
        write_cube(tmp_path / "x.mat", houston, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["x.mat"] and (tmp_path / "x.mat").read_bytes() == b"old"


def test_atomic_bytes_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(path: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cubeio, "_fsync", interrupted)  # everything written, interrupted before the rename
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "f.hnr", b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_written_file_permissions_follow_umask(houston: np.ndarray, tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(0o022)
    try:
        write_cube(tmp_path / "x.h5", houston)
    finally:
        os.umask(old)
    assert (tmp_path / "x.h5").stat().st_mode & 0o777 == 0o644


def test_write_npy_stream_without_seek(houston: np.ndarray) -> None:
    class Pipe:  # what a pipe offers: write and flush, no seek or tell
        def __init__(self) -> None:
            self.chunks: list = []

        def write(self, data: bytes) -> int:
            self.chunks.append(bytes(data))
            return len(data)

        def flush(self) -> None:
            pass

    pipe = Pipe()
    big_endian = houston.astype(">u2")[:, ::-1]  # neither native nor contiguous
    write_npy_stream(pipe, big_endian)
    back = np.load(io.BytesIO(b"".join(pipe.chunks)))
    assert back.dtype == np.dtype(">u2") and np.array_equal(back, big_endian)


def test_formats_never_import_torch() -> None:
    code = "import hinercodec.formats.cubeio, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- MAT v5 without scipy (formats/mat5.py)

MAT5_DTYPES = ["float64", "float32", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", MAT5_DTYPES)
def test_mat5_reader_matches_scipy(tmp_path: Path, dtype: str, compress: bool) -> None:
    """formats/mat5.py lists and reads what scipy.io.whosmat / loadmat do (the stored type, the
    shape, the values, writable), for every numeric type, names of 1 to 40 characters (a name of
    up to 4 is a small data element), 1 to 4 bytes of data (a small element too) and larger."""
    from hinercodec.formats import mat5

    rng = np.random.default_rng(MAT5_DTYPES.index(dtype))
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    def make(shape):
        if info is None:
            return rng.normal(size=shape).astype(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    arrays = {"c": make((7, 5, 3)), "longer_name_of_a_cube_variable_here": make((2, 3, 4, 2)), "one": make((1, 1)),
              "wl": make((1, 9)), "big": make((33, 17))}
    path = tmp_path / "v.mat"
    scipy.io.savemat(path, arrays, do_compression=compress)
    with open(path, "rb") as f:
        listed = mat5.variables(f)
        assert [(v.name, v.shape, v.mclass) for v in listed] == scipy.io.whosmat(path)
        for v in listed:
            got, ref = mat5.read(f, v), scipy.io.loadmat(path, variable_names=[v.name])[v.name]
            assert got.dtype == ref.dtype and got.shape == ref.shape and np.array_equal(got, ref)
            assert got.flags.writeable
    assert np.array_equal(read_cube(path, key="c").data, arrays["c"])


def _element(kind: int, data: bytes) -> bytes:
    """One MAT v5 data element (small format for 4 bytes or less), padded to 8 bytes."""
    import struct
    if len(data) <= 4:
        return struct.pack("<I", len(data) << 16 | kind) + data.ljust(4, b"\0")
    return struct.pack("<II", kind, len(data)) + data + b"\0" * (-len(data) % 8)


def test_mat5_stored_type_smaller_than_class(tmp_path: Path) -> None:
    """MATLAB stores a double array of small integers as uint8 (and so on): read as stored, like
    scipy.io.loadmat (whosmat names the class), a 4-byte real part as a small element."""
    import struct

    from hinercodec.formats import mat5

    path = tmp_path / "m.mat"
    values = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    body = (_element(6, struct.pack("<II", 6, 0)) + _element(5, struct.pack("<3i", 2, 3, 4)) + _element(1, b"x")
            + _element(2, values.tobytes(order="F")))
    small = (_element(6, struct.pack("<II", 6, 0)) + _element(5, struct.pack("<2i", 2, 2)) + _element(1, b"s")
             + _element(2, bytes([1, 2, 3, 4])))
    head = b"MATLAB 5.0 MAT-file, written by a test".ljust(116, b" ") + b"\0" * 8 + b"\x00\x01IM"
    path.write_bytes(head + struct.pack("<II", 14, len(body)) + body + struct.pack("<II", 14, len(small)) + small)
    with open(path, "rb") as f:
        listed = mat5.variables(f)
        assert [(v.name, v.shape, v.mclass) for v in listed] == scipy.io.whosmat(path)
        for v in listed:
            ref = scipy.io.loadmat(path, variable_names=[v.name])[v.name]
            got = mat5.read(f, v)
            assert got.dtype == ref.dtype and np.array_equal(got, ref)


@pytest.mark.parametrize("extra", [{"note": "a string"}, {"flag": np.array([True, False])},
                                   {"s": {"a": np.ones(3)}}, {"z": np.ones(4) * (1 + 2j)}, {"cells": np.array([1, "a"], object)}])
def test_mat5_anything_else_is_read_by_scipy(samson: np.ndarray, tmp_path: Path, extra: dict) -> None:
    """A file holding anything but real numeric arrays (text, logical, struct, complex, cells):
    the reader says Unsupported and the file is read with scipy, the cube the same."""
    from hinercodec.formats import mat5

    path = tmp_path / "x.mat"
    scipy.io.savemat(path, {"cube": samson, **extra})
    with open(path, "rb") as f, pytest.raises(mat5.Unsupported):
        mat5.variables(f)
    assert np.array_equal(read_cube(path, key="cube").data, samson)


def test_mat5_reading_needs_no_scipy(data: Path) -> None:
    """Reading a real-scene .mat (v5) does not import scipy.io (it pulls in scipy.sparse)."""
    code = ("import sys; from hinercodec.formats.cubeio import read_cube; c = read_cube(sys.argv[1]); "
            "assert c.data.shape == (95, 95, 156); assert 'scipy.io' not in sys.modules, 'scipy.io imported'")
    subprocess.run([sys.executable, "-c", code, str(data / "samson.mat")], check=True)


def test_start_up_imports_no_hdf5_library() -> None:
    """h5py is imported where an HDF5 file is read or written, not at every start-up."""
    code = "import sys, hinercodec.cli.main; assert 'h5py' not in sys.modules, 'h5py imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
