"""Hyperspectral cubes (H x W x C) in and out of the containers users have.

Readers accept MATLAB v5 .mat, MATLAB v7.3 .mat (HDF5 behind a 512-byte MATLAB header, axes stored
reversed), plain HDF5, .npy and .npz. The format comes from the magic bytes, not the extension, because
extensions lie and stdin has none. The cube variable is chosen from shapes alone, so listing a big HDF5
file loads nothing. Every failure a user can cause becomes one InputError line naming the file.

Writers are atomic (temp file in the target directory, fsync, os.replace, temp removed on any failure
or Ctrl-C), so no partial output ever exists under the final name; the temp file can be made before
any work (claim_output) so that a bad output is refused at once, and every failed write (a full disk,
a read-only file system, stdout on /dev/full) is one OutputError line. No torch here: the format layer
must stay importable without it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import os
import re
import secrets
import stat
import struct
import sys
import tempfile
import time
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator, Sequence, Union

import numpy as np

if TYPE_CHECKING:  # h5py is imported where an HDF5 file is read or written
    import h5py

from hinercodec.errors import HinercError, InputError, OutputError, OutputExistsError, UsageError

from . import envi, mat5

# Names under which a file may carry band centres (matched case-insensitively, first name wins).
WAVELENGTH_NAMES = ("wavelength_nm", "wavelengths", "wavelength", "wl", "lambda", "bands_nm")
WRITE_EXTENSIONS = (".npy", ".npz", ".mat", ".h5", ".hdf5", ".hdr", ".img", ".tif", ".tiff", ".nc")
# --layout: the order of the stored axes (h rows, w columns, c bands); hwc is the convention.
LAYOUTS = ("hwc", "chw", "hcw")
# Dimension names (NetCDF/HDF5 dimension scales) that mark the band axis, matched case-insensitively.
BAND_DIMENSIONS = ("band", "bands", "wavelength", "wavelengths", "spectral", "spectral_band", "spectral_bands",
                   "lambda", "wl", "bands_nm", "wavelength_nm", "channel", "channels")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# A .npy holds one unnamed array; this is the name it gets in Cube.key and in messages.
NPY_KEY = "cube"

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_MAT73_TEXT = b"MATLAB 7.3 MAT-file"
# MATLAB v5 stores sizes in 32 bits and caps a variable at 2 GiB; keep room for the headers.
_MAT5_MAX_BYTES = 2**31 - 2**16
_MATLAB_CLASS = {np.dtype(n): c for n, c in [
    ("float64", "double"), ("float32", "single"), ("int8", "int8"), ("uint8", "uint8"),
    ("int16", "int16"), ("uint16", "uint16"), ("int32", "int32"), ("uint32", "uint32"),
    ("int64", "int64"), ("uint64", "uint64")]}
_MATLAB_NUMPY = {c: d.name for d, c in _MATLAB_CLASS.items()}
_MATLAB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}\Z")
# Everything numpy, h5py, scipy and zipfile raise on a missing, damaged or foreign file.
# (SyntaxError and TokenError: numpy parses a garbled .npy header as a Python literal.)
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, RuntimeError, MemoryError,
                SyntaxError, tokenize.TokenError, zipfile.BadZipFile, struct.error, zlib.error)


def _read_errors() -> tuple:
    """_READ_ERRORS, plus scipy's MatReadError once scipy.io is loaded (it is imported only where a
    MATLAB or NetCDF3 file is read or written, which keeps `hinerc decode` quick to start; before
    that import it cannot have been raised)."""
    matlab = sys.modules.get("scipy.io.matlab")
    return _READ_ERRORS + ((matlab.MatReadError,) if matlab is not None else ())


_LIST_MAX = 8  # variables named in a message before "... and N more"

_Source = Union[str, bytes]  # a path, or the bytes read from stdin


@dataclass
class Cube:
    """A cube as read from a file, with what the messages and the .hnr metadata need about it."""

    data: np.ndarray  # H x W x C, stored dtype in native byte order, C-contiguous
    wavelengths: np.ndarray | None  # float64 nm, length C, strictly monotonic; or None
    key: str  # variable/dataset name the cube came from
    source: str  # the path, or "-" for stdin
    metadata: dict | None = None  # sensor metadata (formats/metadata.py keys), or None
    layout: str | None = None  # the stored axis order the cube was read in (LAYOUTS)


@dataclass(frozen=True)
class _Var:
    """One array in a file, described without loading it."""

    name: str
    shape: tuple  # as it will be returned (MATLAB v7.3 axes already reversed)
    dtype: str  # for messages: "float32", "complex128", "char", ...
    kind: str  # "real" (int/uint/float), "complex" or "other"
    load: Callable[[], np.ndarray]
    # (y0, y1, x0, x1) -> that window of a 3-D array, read without loading the rest (HDF5, .npy)
    window: Callable[[int, int, int, int], np.ndarray] | None = None
    # slices (one per axis, as returned) -> that block, read without loading the rest (any axis order)
    block: Callable[[tuple], np.ndarray] | None = None
    dims: tuple | None = None  # axis names from the file (NetCDF/HDF5 dimension scales), or None
    metadata: dict | None = None  # sensor metadata of this array (ENVI header, GeoTIFF, NetCDF attributes)
    layout: str | None = None  # the axis order the file itself declares (ENVI interleave), if any


# ----------------------------------------------------------------------------------------------- reading


def read_input_bytes(path: str | os.PathLike) -> bytes:
    """The whole file, or all of stdin for "-" (stdin cannot seek, and the readers need to)."""
    if os.fspath(path) == "-":
        try:
            if sys.stdin.isatty():
                raise InputError("stdin is a terminal; pipe a file in or give a path")
            return sys.stdin.buffer.read()
        except (OSError, ValueError, AttributeError) as exc:
            raise InputError(f"cannot read stdin: {_reason(exc)}") from exc
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {os.fspath(path)}: {_reason(exc)}") from exc


def read_cube(path: str | os.PathLike, key: str | None = None,
              wavelengths: str | Sequence[float] | None = None, layout: str | None = None) -> Cube:
    """Read the H x W x C cube of a .mat/.h5/.npy/.npz file ("-" = stdin), validated.

    `key` names the variable (an HDF5 path such as "group/cube" works; ignored for .npy, which holds one
    array); without it the only real 3-D array is taken. `wavelengths` is a sequence of nm, the name of a
    variable in the same file, or None to look for one named like WAVELENGTH_NAMES with length C.
    `layout` (LAYOUTS) is the stored axis order when the file does not say it (see _orient).
    ENVI (.hdr or its data file), GeoTIFF (needs rasterio) and NetCDF4 files are read too, with
    their metadata (Cube.metadata). Pixels whose bands are all NaN are nodata and pass the checks.
    """
    with open_cube(path, key=key, wavelengths=wavelengths, layout=layout) as reader:
        data = reader.read(0, reader.shape[0], 0, reader.shape[1])
    return Cube(data=data, wavelengths=reader.wavelengths, key=reader.key, source=reader.source,
                metadata=reader.metadata, layout=reader.layout)


@dataclass
class CubeReader:
    """A cube file held open, read window by window (see open_cube)."""

    shape: tuple  # H, W, C
    dtype: np.dtype  # native byte order
    wavelengths: np.ndarray | None
    key: str
    source: str
    _window: Callable[[int, int, int, int], np.ndarray]
    metadata: dict | None = None  # sensor metadata, as Cube.metadata
    layout: str | None = None  # the stored axis order read (LAYOUTS), as Cube.layout

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Rows y0:y1, columns x0:x1, all bands: native, C-contiguous, finite (else InputError)."""
        label = "stdin" if self.source == "-" else self.source
        try:
            arr = self._window(y0, y1, x0, x1)
        except HinercError:
            raise
        except _read_errors() as exc:
            raise InputError(f"cannot read {label}: {_reason(exc)}") from exc
        return _checked_data(arr, label, self.key)


@contextlib.contextmanager
def open_cube(path: str | os.PathLike, key: str | None = None,
              wavelengths: str | Sequence[float] | None = None, layout: str | None = None) -> Iterator[CubeReader]:
    """The cube of a file, held open for reading windows (the same choice of variable and
    wavelengths as read_cube). HDF5, MATLAB v7.3, .npy, ENVI and GeoTIFF files are read window by
    window, so a scene larger than memory can be encoded tile by tile; other formats are read whole once."""
    source = os.fspath(path)
    label = "stdin" if source == "-" else source
    if layout is not None and layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} (one of {', '.join(LAYOUTS)})")
    with contextlib.ExitStack() as stack:
        try:
            src: _Source = read_input_bytes("-") if source == "-" else source
            fmt = _sniff(src, label)
            variables = stack.enter_context(_variables(src, fmt))
            var = _select(variables, None if fmt in ("npy", "envi", "tiff") else key, label)
            var = _orient(var, variables, layout, wavelengths, label)
            if var.window is not None:
                dtype, window = var.window(0, 1, 0, 1).dtype.newbyteorder("="), var.window
                shape = tuple(int(n) for n in var.shape)
            else:
                data = _checked_data(var.load(), label, var.name)
                dtype, shape = data.dtype, tuple(int(n) for n in data.shape)
                window = lambda y0, y1, x0, x1: data[y0:y1, x0:x1]  # noqa: E731
            wl = _pick_wavelengths(variables, wavelengths, shape[2], label)
            if wl is None and wavelengths is None and var.metadata:
                wl = _metadata_wavelengths(var.metadata, shape[2], label)
            if var.dims and fmt in ("hdf5", "netcdf3"):
                var = dataclasses.replace(var, metadata=_band_variables(variables, shape[2], var.metadata))
            reader = CubeReader(shape=shape, dtype=np.dtype(dtype), wavelengths=wl, key=var.name, source=source,
                                _window=window, metadata=var.metadata or None, layout=var.layout)
        except HinercError:
            raise
        except _read_errors() as exc:
            raise InputError(f"cannot read {label}: {_reason(exc)}") from exc
        yield reader


def _reason(exc: BaseException) -> str:
    """One line out of any exception (h5py and scipy messages can span several)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _binary(src: _Source) -> BinaryIO:
    return io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")


def _sniff(src: _Source, label: str) -> str:
    """Format from magic bytes: "npy", "npz", "mat5", "mat73", "hdf5", "envi", "tiff" or "netcdf3"
    (an ENVI data file, which has no magic, by the header beside it)."""
    if isinstance(src, str) and Path(src).suffix.lower() in envi.DATA_SUFFIXES and not Path(src).is_dir() \
            and envi.header_for(src) is not None:
        return "envi"
    with _binary(src) as f:
        head = f.read(128)
        size = f.seek(0, io.SEEK_END)
        if size == 0:
            raise InputError(f"{label} is empty (0 bytes)")
        if envi.is_header(head):
            if isinstance(src, bytes):
                raise InputError("an ENVI header on stdin has no data file beside it; give the .hdr's path")
            return "envi"
        if head.startswith(_TIFF_MAGIC):
            return "tiff"
        if head.startswith((b"CDF\x01", b"CDF\x02")):
            return "netcdf3"
        if head.startswith(b"\x93NUMPY"):
            return "npy"
        if head.startswith(b"PK\x03\x04"):
            return "npz"
        if head.startswith(b"MATLAB 5.0 MAT-file"):
            return "mat5"
        offset = 0  # HDF5 puts its superblock at 0, 512, 1024, 2048, ... (after a user block)
        while offset + len(_HDF5_MAGIC) <= size:
            f.seek(offset)
            if f.read(len(_HDF5_MAGIC)) == _HDF5_MAGIC:
                return "mat73" if offset and head.startswith(_MAT73_TEXT) else "hdf5"
            offset = offset * 2 if offset else 512
    if isinstance(src, str) and envi.header_for(src) is not None:
        return "envi"
    raise InputError(f"{label} is not a cube file hinerc reads (MATLAB .mat, HDF5 .h5, NetCDF .nc, .npy, .npz, "
                     "ENVI .hdr with its data file, GeoTIFF .tif)")


@contextlib.contextmanager
def _variables(src: _Source, fmt: str) -> Iterator[dict]:
    """Name -> _Var for every array in the file; the file stays open while the loaders are used."""
    if fmt == "npy":
        with _binary(src) as f:
            shape, dtype = _npy_header(f)
        var = _make_var(NPY_KEY, shape, dtype, lambda: _load_npy(src))
        if isinstance(src, str) and len(shape) == 3:
            mapped = np.load(src, mmap_mode="r", allow_pickle=False)
            var = dataclasses.replace(var, window=lambda y0, y1, x0, x1: np.array(mapped[y0:y1, x0:x1]),
                                      block=lambda sl: np.array(mapped[sl]))
        yield {NPY_KEY: var}
    elif fmt == "envi":
        yield {NPY_KEY: _envi_var(str(src))}
    elif fmt == "tiff":
        with _tiff_dataset(src) as ds:
            yield {NPY_KEY: _tiff_var(ds)}
    elif fmt == "netcdf3":
        with _netcdf3(src) as nc:
            yield _netcdf3_variables(nc)
    elif fmt == "npz":
        with _binary(src) as f, zipfile.ZipFile(f) as zf:
            yield _npz_variables(zf)
    elif fmt == "mat5":
        yield _mat5_variables(src)
    else:
        import h5py  # imported where an HDF5 file is read or written (not at every start-up)

        with h5py.File(io.BytesIO(src) if isinstance(src, bytes) else src, "r") as h5:
            yield _hdf5_variables(h5, reverse_all=fmt == "mat73")


def _kind(dtype: np.dtype) -> str:
    if dtype.kind in "iuf":
        return "real"
    if dtype.kind == "c" or (dtype.names is not None and set(dtype.names) in ({"real", "imag"}, {"r", "i"})):
        return "complex"  # MATLAB v7.3 stores complex data as a compound (real, imag)
    return "other"


def _make_var(name: str, shape: tuple, dtype: np.dtype, load: Callable[[], np.ndarray]) -> _Var:
    kind = _kind(dtype)
    text = dtype.name if dtype.kind in "biufc" else ("complex" if kind == "complex" else str(dtype))
    return _Var(name, tuple(shape), text, kind, load)


def _npy_header(f: BinaryIO) -> tuple:
    """(shape, dtype) of the .npy at the stream's position, reading only its header."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _fortran, dtype = read(f)
    return shape, dtype


def _load_npy(src: _Source) -> np.ndarray:
    with _binary(src) as f:
        return np.load(f, allow_pickle=False)


def _npz_variables(zf: zipfile.ZipFile) -> dict:
    out = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        with zf.open(info) as member:
            shape, dtype = _npy_header(member)

        def load(info: zipfile.ZipInfo = info) -> np.ndarray:
            with zf.open(info) as member:
                return np.lib.format.read_array(member, allow_pickle=False)

        name = info.filename[:-4]
        out[name] = _make_var(name, shape, dtype, load)
    return out


def _mat5_variables(src: _Source) -> dict:
    """MAT v5 variables: formats/mat5.py's reader (no scipy import) for files of real numeric
    arrays, scipy.io for any other."""
    try:
        with _binary(src) as f:
            listed = mat5.variables(f)
    except mat5.Unsupported:
        return _scipy_mat5_variables(src)
    out = {}
    for var in listed:

        def load(var: mat5.Variable = var) -> np.ndarray:
            with _binary(src) as f:
                return mat5.read(f, var)

        out[var.name] = _Var(var.name, var.shape, _MATLAB_NUMPY[var.mclass], "real", load)
    return out


def _scipy_mat5_variables(src: _Source) -> dict:
    import scipy.io

    with _binary(src) as f:
        entries = scipy.io.whosmat(f)
    out = {}
    for name, shape, mclass in entries:

        def load(name: str = name) -> np.ndarray:
            import scipy.io

            with _binary(src) as f:
                return scipy.io.loadmat(f, variable_names=[name])[name]

        # whosmat cannot tell complex from real: _checked_data catches complex after loading.
        numeric = mclass in _MATLAB_NUMPY
        text = _MATLAB_NUMPY.get(mclass, "bool" if mclass == "logical" else mclass)
        out[name] = _Var(name, tuple(shape), text, "real" if numeric else "other", load)
    return out


def _hdf5_variables(h5: "h5py.File", reverse_all: bool) -> dict:
    """Every dataset, recursively; MATLAB ones (class attribute or v7.3 header) get their axes reversed."""
    import h5py

    out = {}

    def visit(name: str, obj: object) -> None:
        if not isinstance(obj, h5py.Dataset) or name.startswith(("#refs#", "#subsystem#")):
            return  # MATLAB's hidden storage for cells, objects and strings
        mclass = obj.attrs.get("MATLAB_class")
        mclass = mclass.decode("ascii", "replace") if isinstance(mclass, bytes) else mclass
        reverse = reverse_all or mclass is not None
        shape = tuple(obj.shape or ())
        if obj.attrs.get("MATLAB_empty"):
            shape = (0,)  # MATLAB stores an empty array's dims as its data
        if reverse:
            shape = shape[::-1]

        def load() -> np.ndarray:
            arr = np.asarray(obj[()])
            return arr.T if reverse else arr

        def window(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
            return np.asarray(obj[:, x0:x1, y0:y1]).T if reverse else np.asarray(obj[y0:y1, x0:x1, :])

        def block(sl: tuple) -> np.ndarray:
            return np.asarray(obj[tuple(sl[::-1])]).T if reverse else np.asarray(obj[tuple(sl)])

        var = _make_var(name, shape, obj.dtype, load)
        if len(shape) == 3:
            var = dataclasses.replace(var, window=window, block=block)
            if not reverse:
                var = dataclasses.replace(var, dims=_hdf5_dims(obj), metadata=_attribute_metadata(dict(obj.attrs)))
        elif len(shape) == 1 and not reverse:  # a wavelength variable's units
            var = dataclasses.replace(var, metadata=_attribute_metadata(dict(obj.attrs)))
        if mclass is not None and mclass not in _MATLAB_NUMPY and var.kind == "real":
            var = _Var(name, shape, "bool" if mclass == "logical" else str(mclass), "other", load)
        out[name] = var

    h5.visititems(visit)
    return out


def _hdf5_dims(obj: "h5py.Dataset") -> tuple | None:
    """The names of a dataset's dimensions (NetCDF4 dimensions are HDF5 dimension scales), or None."""
    names = []
    try:
        for dim in obj.dims:
            name = None
            if len(dim):
                name = dim[0].name.rsplit("/", 1)[-1]
            names.append(name or (dim.label or None))
    except (KeyError, ValueError, RuntimeError, OSError, TypeError):
        return None
    return tuple(names) if any(names) else None


_NC_KEYS = ("_FillValue", "missing_value", "units", "scale_factor", "add_offset")


def _attr_value(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_attr_value(v) for v in value.tolist()] if value.size != 1 else _attr_value(value.reshape(-1)[0])
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


def _attribute_metadata(attrs: dict, source_format: str = "netcdf") -> dict | None:
    """Sensor metadata of a NetCDF/HDF5 variable's attributes (CF names), or None when it has none of them."""
    if not any(k in attrs for k in _NC_KEYS):
        return None
    values = {k: _attr_value(v) for k, v in attrs.items()
              if k not in ("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME") and not k.startswith("_Netcdf4")}
    meta: dict = {"source_format": source_format}
    fill = values.get("_FillValue", values.get("missing_value"))
    if isinstance(fill, (int, float)):
        meta["nodata"] = float(fill)
    if isinstance(values.get("units"), str):
        meta["data_units"] = values["units"]
    for key, name in (("scale_factor", "scale"), ("add_offset", "offset")):
        if isinstance(values.get(key), (int, float)):
            meta[name] = float(values[key])
    meta["attributes"] = values
    return meta


@contextlib.contextmanager
def _netcdf3(src: _Source) -> Iterator[object]:
    import scipy.io

    nc = scipy.io.netcdf_file(io.BytesIO(src) if isinstance(src, bytes) else src, "r", mmap=False)
    try:
        yield nc
    finally:
        nc.close()


def _netcdf3_variables(nc: object) -> dict:
    out = {}
    for name, v in nc.variables.items():
        arr = v.data

        def load(arr: np.ndarray = arr) -> np.ndarray:
            return np.array(arr)

        var = _make_var(name, tuple(arr.shape), arr.dtype, load)
        if arr.ndim == 3:
            var = dataclasses.replace(var, dims=tuple(v.dimensions), block=lambda sl, arr=arr: np.array(arr[sl]),
                                      metadata=_attribute_metadata(dict(v._attributes)))
        out[name] = var
    return out


def _envi_var(path: str) -> _Var:
    f = envi.EnviFile(path)
    meta = f.metadata()
    return _Var(NPY_KEY, f.shape, f.dtype.name, _kind(f.dtype), f.load, window=f.window, metadata=meta,
                layout=envi.INTERLEAVES[f.interleave])


def _rasterio():
    try:
        import rasterio
    except ImportError:
        raise InputError("reading GeoTIFF needs rasterio: pip install 'hinerc[formats]' (or pip install rasterio)") \
            from None
    return rasterio


@contextlib.contextmanager
def _tiff_dataset(src: _Source) -> Iterator[object]:
    rasterio = _rasterio()
    try:
        if isinstance(src, bytes):
            with rasterio.io.MemoryFile(src) as mem, mem.open() as ds:
                yield ds
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                ds = rasterio.open(src)
            with ds:
                yield ds
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"cannot read {'stdin' if isinstance(src, bytes) else src}: {_reason(exc)}") from None


def _tiff_var(ds: object) -> _Var:
    from rasterio.windows import Window

    if len(set(ds.dtypes)) != 1:
        raise InputError(f"{ds.name}: bands of several sample types ({', '.join(sorted(set(ds.dtypes)))})")
    dtype = np.dtype(ds.dtypes[0])
    shape = (ds.height, ds.width, ds.count)

    def window(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return np.ascontiguousarray(ds.read(window=Window(x0, y0, x1 - x0, y1 - y0)).transpose(1, 2, 0))

    return _Var(NPY_KEY, shape, dtype.name, _kind(dtype), lambda: window(0, shape[0], 0, shape[1]), window=window,
                metadata=_tiff_metadata(ds), layout="hwc")


def _tiff_metadata(ds: object) -> dict:
    """GeoTIFF -> sensor metadata: CRS (WKT), affine transform, nodata, band names, units, scales,
    offsets, wavelengths/fwhm from the band tags (GDAL's and the ENVI domain), every tag verbatim."""
    meta: dict = {"source_format": "geotiff"}
    if ds.crs is not None:
        meta["crs_wkt"] = ds.crs.to_wkt()
    t = ds.transform
    if not t.is_identity:
        meta["transform"] = [t.a, t.b, t.c, t.d, t.e, t.f]
    if ds.nodata is not None:
        meta["nodata"] = float(ds.nodata)
    tags = {k: v for k, v in ds.tags().items()}
    band_tags = [ds.tags(i + 1) for i in range(ds.count)]
    per_band: dict = {}
    for key in ("wavelength", "fwhm"):
        values = [bt.get(key) for bt in band_tags]
        if all(v is not None for v in values):
            try:
                per_band[key] = [float(v) for v in values]
            except ValueError:
                pass
    envi_tags = ds.tags(ns="ENVI") if "ENVI" in (ds.tag_namespaces() or []) else {}
    for key in ("wavelength", "fwhm"):
        if key not in per_band and key in envi_tags:
            try:
                values = [float(v) for v in envi.split_list(envi_tags[key].strip("{}"))]
                if len(values) == ds.count:
                    per_band[key] = values
            except ValueError:
                pass
    units = tags.get("wavelength_units") or envi_tags.get("wavelength_units") or envi_tags.get("wavelength units")
    if units:
        meta["wavelength_units"] = units
    if any(ds.descriptions):
        per_band["band_names"] = [d or "" for d in ds.descriptions]
    if any(u for u in ds.units):
        meta["data_units"] = ds.units[0] if len(set(ds.units)) == 1 else list(ds.units)
    if any(s != 1.0 for s in ds.scales) or any(o != 0.0 for o in ds.offsets):
        per_band["gain"], per_band["offset"] = [float(s) for s in ds.scales], [float(o) for o in ds.offsets]
    if per_band:
        meta["bands"] = per_band
    extra = {k: v for k, v in tags.items() if k != "wavelength_units"}
    band_extra = [{k: v for k, v in bt.items() if k not in ("wavelength", "fwhm")} for bt in band_tags]
    if extra or any(band_extra):
        meta["tags"] = {"dataset": extra, "bands": band_extra} if any(band_extra) else {"dataset": extra}
    return meta


def _layout_of_band_axis(axis: int) -> str:
    return ("chw", "hcw", "hwc")[axis]


def _orient(var: _Var, variables: dict, layout: str | None, wavelengths: object, label: str) -> _Var:
    """The variable as H x W x C. The band axis comes from the file (ENVI interleave, a NetCDF/HDF5
    dimension named like BAND_DIMENSIONS, a wavelength vector whose length matches exactly one axis),
    else from `layout`, else the convention H x W x C, except that an array whose first axis is the
    shortest (as band-first data look) is refused as ambiguous, naming --layout."""
    declared = var.layout
    if declared is None and var.dims:
        names = [str(n).lower() if n else "" for n in var.dims]
        found = [i for i, n in enumerate(names) if n in BAND_DIMENSIONS]
        if len(found) == 1:
            declared = _layout_of_band_axis(found[0])
    if declared is not None and layout is not None and layout != declared:
        raise UsageError(f"--layout {layout} contradicts {label}, whose band axis makes it {declared}")
    if var.layout is not None:  # read as H x W x C already (ENVI, GeoTIFF)
        return var
    chosen = declared or layout
    if chosen is None and wavelengths is None:
        lengths = {_vector_length(v.shape) for v in variables.values()
                   if v.name.rsplit("/", 1)[-1].lower() in WAVELENGTH_NAMES and v.kind == "real"}
        matches = [i for i in range(3) if var.shape[i] in lengths]
        if len(matches) == 1:
            chosen = _layout_of_band_axis(matches[0])
    if chosen is None:
        h, w, c = var.shape
        if h < w and h < c:
            raise InputError(f"{label}: {var.name!r} is {_shape_text(var.shape)} and nothing in the file says "
                             f"which axis holds the bands; its first axis is the shortest, as in a band-first "
                             f"cube: pass --layout chw (bands first) or --layout hwc (bands last)")
        chosen = "hwc"
    if chosen == "hwc":
        return dataclasses.replace(var, layout=chosen)
    perm = tuple(chosen.index(a) for a in "hwc")
    shape = tuple(var.shape[i] for i in perm)
    load = var.load

    def oriented() -> np.ndarray:
        return np.asarray(load()).transpose(perm)

    window = None
    if var.block is not None:
        block = var.block

        def window(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
            sl = [slice(None)] * 3
            sl[perm[0]], sl[perm[1]] = slice(y0, y1), slice(x0, x1)
            return np.asarray(block(tuple(sl))).transpose(perm)

    return dataclasses.replace(var, shape=shape, load=oriented, window=window, block=None, layout=chosen)


def _band_variables(variables: dict, bands: int, meta: dict | None) -> dict | None:
    """NetCDF/HDF5: the units of the wavelength variable and a fwhm variable of length C, into the metadata."""
    out = dict(meta or {})
    per_band = dict(out.get("bands", {}))
    for v in variables.values():
        base = v.name.rsplit("/", 1)[-1].lower()
        if v.kind == "real" and _vector_length(v.shape) == bands and base in ("fwhm", "fwhm_nm", "bandwidth"):
            per_band["fwhm"] = [float(x) for x in np.asarray(v.load(), np.float64).reshape(-1)]
    if per_band:
        out["bands"] = per_band
        out.setdefault("source_format", "netcdf")
    return out or None


def _metadata_wavelengths(meta: dict, bands: int, label: str) -> np.ndarray | None:
    """Band centres in nm from the sensor metadata; None when they are absent or not strictly
    monotonic (they stay in the metadata, the WAVE chunk then has none)."""
    nm = envi.wavelengths_nm(meta)
    if nm is None or nm.size != bands:
        return None
    try:
        return _checked_wavelengths(nm, bands, f"{label}: wavelengths")
    except InputError:
        return None


def _shape_text(shape: tuple) -> str:
    return " x ".join(str(n) for n in shape) if shape else "scalar"


def _describe(variables: Sequence[_Var]) -> str:
    items = [f"{v.name} ({_shape_text(v.shape)} {v.dtype})" for v in variables[:_LIST_MAX]]
    if len(variables) > _LIST_MAX:
        items.append(f"... and {len(variables) - _LIST_MAX} more")
    return ", ".join(items) if items else "none"


def _problem(shape: tuple, kind: str, dtype: str) -> str | None:
    """Why an array cannot be a cube, or None."""
    if kind == "complex":
        return f"is complex ({dtype}); a cube must be real"
    if kind != "real":
        return f"is {dtype}, not numeric; a cube must be a real numeric H x W x C array"
    if len(shape) != 3:
        dims = f"{len(shape)}-D ({_shape_text(shape)})" if shape else "a scalar"
        return f"is {dims}; a cube must be H x W x C"
    if 0 in shape:
        return f"is empty ({_shape_text(shape)})"
    return None


def _select(variables: dict, key: str | None, label: str) -> _Var:
    """The cube variable: `key`, else the only real 3-D array, else a clear error."""
    candidates = [v for v in variables.values() if v.kind == "real" and len(v.shape) == 3]
    if key is not None:
        var = variables.get(key.strip("/"))
        if var is None:
            found = f"3-D arrays: {_describe(candidates)}" if candidates else \
                f"it has no 3-D numeric array; variables: {_describe(list(variables.values()))}"
            raise InputError(f"{label} has no variable {key!r}; {found}")
    elif len(candidates) == 1:
        var = candidates[0]
    elif candidates:
        raise InputError(f"{label} holds several 3-D arrays: {_describe(candidates)}; pass --key to choose one")
    else:
        # Name the one array that looks meant as the cube (the only one, or the only non-vector) if any.
        everything = list(variables.values())
        arrays = [v for v in everything if len(v.shape) >= 2]
        single = everything if len(everything) == 1 else arrays
        if len(single) != 1:
            raise InputError(f"{label} has no 3-D numeric array (H x W x C); variables: {_describe(everything)}")
        var = single[0]
    problem = _problem(var.shape, var.kind, var.dtype)
    if problem:
        raise InputError(f"{label}: {var.name!r} {problem}")
    return var


def _checked_data(arr: np.ndarray, label: str, name: str) -> np.ndarray:
    """Native byte order, C-contiguous, real, 3-D, non-empty and finite, or InputError."""
    arr = np.asarray(arr)
    problem = _problem(arr.shape, _kind(arr.dtype), arr.dtype.name)
    if problem:
        raise InputError(f"{label}: {name!r} {problem}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    arr = np.ascontiguousarray(arr)
    if arr.dtype.kind == "f":
        _check_finite(arr, label, name)
    return arr


def _check_finite(arr: np.ndarray, label: str, name: str) -> None:
    """Count NaN/Inf and find the first one, in slabs of rows so a big cube needs little extra memory."""
    rows = max(1, (64 << 20) // max(1, arr.shape[1] * arr.shape[2]))
    nan = inf = 0
    first = None
    for r0 in range(0, arr.shape[0], rows):
        slab = arr[r0:r0 + rows]
        bad = ~np.isfinite(slab)
        if not bad.any():
            continue
        bad &= ~np.isnan(slab).all(axis=2, keepdims=True)  # a pixel NaN in every band is nodata
        if not bad.any():
            continue
        slab = np.where(bad, slab, 0)
        n_nan = int(np.count_nonzero(np.isnan(slab)))
        nan, inf = nan + n_nan, inf + int(np.count_nonzero(bad)) - n_nan
        if first is None:
            i, j, k = np.unravel_index(int(np.argmax(bad)), slab.shape)
            first = (r0 + int(i), int(j), int(k))
    if first is not None:
        raise InputError(f"{label}: {name!r} has {nan} NaN and {inf} Inf values; the first at row {first[0]}, "
                         f"column {first[1]}, band {first[2]} (0-based); only pixels NaN in every band are nodata")


def _vector_length(shape: tuple) -> int | None:
    """C for shapes (C,), (1, C) and (C, 1); None for anything else."""
    if len(shape) == 1:
        return shape[0]
    if len(shape) == 2 and 1 in shape:
        return shape[0] * shape[1]
    return None


def _pick_wavelengths(variables: dict, spec: str | Sequence[float] | None, bands: int,
                      label: str) -> np.ndarray | None:
    if spec is None:
        rank = {n: i for i, n in enumerate(WAVELENGTH_NAMES)}
        found = sorted((rank[v.name.rsplit("/", 1)[-1].lower()], v.name) for v in variables.values()
                       if v.name.rsplit("/", 1)[-1].lower() in rank and v.kind == "real"
                       and _vector_length(v.shape) == bands)
        if not found:
            return None
        name = found[0][1]
        return _in_nm(variables[name], _checked_wavelengths(variables[name].load(), bands, f"{label}: wavelengths {name!r}"))
    if isinstance(spec, str):
        var = variables.get(spec.strip("/"))
        if var is None:
            raise InputError(f"{label} has no variable {spec!r} for the wavelengths; "
                             f"variables: {_describe(list(variables.values()))}")
        if var.kind != "real" or _vector_length(var.shape) is None:
            raise InputError(f"{label}: wavelengths {spec!r} is {_shape_text(var.shape)} {var.dtype}; "
                             "it must be a 1-D numeric array")
        return _in_nm(var, _checked_wavelengths(var.load(), bands, f"{label}: wavelengths {spec!r}"))
    return _checked_wavelengths(spec, bands, "the wavelengths")


def _in_nm(var: _Var, values: np.ndarray) -> np.ndarray:
    """A wavelength variable's values in nm: converted when its `units` attribute says micrometres
    (NetCDF/HDF5; values without units are taken as nm, as before)."""
    units = str((var.metadata or {}).get("data_units", "")).strip()
    if not units:
        return values
    return np.ascontiguousarray(envi.wavelengths_nm({"bands": {"wavelength": values}, "wavelength_units": units}))


def _checked_wavelengths(values: object, bands: int | None, label: str) -> np.ndarray:
    """float64, 1-D, finite, strictly monotonic and (if `bands`) of length `bands`, or InputError."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{label} must be a list of numbers") from exc
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{label} must be real numbers, not {arr.dtype}")
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise InputError(f"{label} must be a 1-D list of numbers, not {_shape_text(arr.shape)}")
    arr = arr.astype(np.float64)
    if arr.size == 0:
        raise InputError(f"{label} are empty")
    if bands is not None and arr.size != bands:
        raise InputError(f"{label} has {arr.size} values but the cube has {bands} bands")
    if not np.isfinite(arr).all():
        raise InputError(f"{label} contain NaN or Inf")
    steps = np.diff(arr)
    if not ((steps > 0).all() or (steps < 0).all()):
        raise InputError(f"{label} must be strictly increasing or strictly decreasing")
    return np.ascontiguousarray(arr)


def parse_wavelengths(text: str) -> np.ndarray:
    """Wavelengths (nm) from "400:10:590" (start:step:stop, stop included), "400,410,..." or a .txt/.npy file."""
    spec = text.strip()
    path = Path(spec)
    if spec and (path.suffix.lower() in (".npy", ".txt", ".csv") or _is_file(path)):
        values = _wavelengths_file(path)
    elif ":" in spec:
        values = _wavelength_range(spec)
    else:
        values = _numbers(spec.split(","), spec)
    return _checked_wavelengths(values, None, f"wavelengths {text!r}")


def _is_file(path: Path) -> bool:
    """Path.is_file, but False for strings no file system accepts (e.g. a long list of numbers)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _numbers(tokens: Sequence[str], spec: str) -> list:
    out = []
    for token in tokens:
        try:
            out.append(float(token))
        except ValueError:
            raise InputError(f"wavelengths {spec!r}: {token.strip()!r} is not a number") from None
    return out


def _wavelength_range(spec: str) -> np.ndarray:
    parts = spec.split(":")
    if len(parts) != 3:
        raise InputError(f"wavelength range {spec!r} must be start:step:stop, e.g. 400:10:590")
    start, step, stop = _numbers(parts, spec)
    if step == 0 or not np.isfinite([start, step, stop]).all():
        raise InputError(f"wavelength range {spec!r} needs finite numbers and a non-zero step")
    count = (stop - start) / step
    if count < 0 or abs(count - round(count)) > 1e-6 * max(1.0, abs(count)):
        raise InputError(f"wavelength range {spec!r}: stop must be start plus a whole number of steps")
    if count >= 1_000_000:
        raise InputError(f"wavelength range {spec!r} has more than a million values")
    return start + step * np.arange(round(count) + 1)


def _wavelengths_file(path: Path) -> np.ndarray | list:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        lines = (line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())
        tokens = " ".join(lines).replace(",", " ").replace(";", " ").split()
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read wavelengths from {path}: {_reason(exc)}") from exc
    return _numbers(tokens, str(path))


# ----------------------------------------------------------------------------------------------- writing


class OutputTarget:
    """An output claimed before any work: the temporary file beside it exists, so a missing
    directory, a read-only file system, a name that is a directory or an existing file (without
    `force`) is refused at once, not after a long encode. The writers fill `tmp` and `commit()`
    moves it into place; `discard()` (or leaving `claim_output` on an error or Ctrl-C) deletes it.

    A path naming a device or a pipe (/dev/null, /dev/full, a FIFO) is written in place, as `cp`
    does, without `force` (nothing is replaced); the writers then fill a temporary file in the
    system's temporary directory, copied into it at the end.
    """

    def __init__(self, path: str | os.PathLike, force: bool = False) -> None:
        self.path = Path(path)
        self.force = force
        self.tmp: Path | None = None
        self._fd: int | None = None  # a device or pipe, open for writing
        self._claim()

    @property
    def special(self) -> bool:
        return self._fd is not None

    def _claim(self) -> None:
        path = self.path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:  # a parent that is a file (ENOTDIR), a loop of links, no permission
            raise OutputError(f"cannot write {path}: {_write_reason(exc)}") from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(f"cannot write {path}: it is a directory; give a file name "
                              "(-O DIR is for archive runs of hinerc encode)")
        if st is not None and not stat.S_ISREG(st.st_mode):
            try:
                self._fd = os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
                fd, name = tempfile.mkstemp(prefix="hinerc-", suffix=".tmp")
                os.close(fd)
            except OSError as exc:
                self.discard()
                raise OutputError(f"cannot write {path}: {_write_reason(exc)}") from None
            self.tmp = Path(name)
            return
        _refuse_overwrite(path, self.force)
        final = path
        if st is not None and os.path.islink(path):  # a link to a file: replace the file, keep the link
            final = Path(os.path.realpath(path))
        tmp = final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")
        try:
            # 0o666 lets the umask set the permissions, as for a normally created file (mkstemp gives 0o600).
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
        except OSError as exc:
            if exc.errno == errno.ENOENT and not final.parent.is_dir():
                raise OutputError(f"cannot write {path}: the directory {final.parent} does not exist") from None
            raise OutputError(f"cannot write {path}: {_write_reason(exc)}") from None
        self.final, self.tmp = final, tmp

    def commit(self) -> None:
        """Make the written temporary file the output (fsync, then an atomic rename), or raise OutputError."""
        if self.tmp is None:
            raise RuntimeError(f"{self.path}: output already committed or discarded")
        try:
            if self._fd is not None:
                with open(self.tmp, "rb") as f:
                    while True:
                        block = f.read(16 << 20)
                        if not block:
                            break
                        write_all(self._fd, block)
                fd, self._fd = self._fd, None
                os.close(fd)
                os.unlink(self.tmp)
            else:
                _fsync(self.tmp)
                _refuse_overwrite(self.path, self.force)  # again: a long write leaves time for someone to create it
                os.replace(self.tmp, self.final)
                with contextlib.suppress(OSError):  # durability of the rename; some file systems refuse this
                    _fsync_dir(self.final.parent)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {_write_reason(exc, self.tmp)}") from None
        except BaseException:
            self.discard()
            raise
        self.tmp = None

    def write_bytes(self, data: bytes) -> None:
        """The whole output at once (a device is written directly, with no temporary copy)."""
        if self.tmp is None:
            raise RuntimeError(f"{self.path}: output already committed or discarded")
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                try:
                    write_all(fd, data)
                finally:
                    os.close(fd)
            except OSError as exc:
                self.discard()
                raise OutputError(f"cannot write {self.path}: {_write_reason(exc)}") from None
            self.discard()
            return
        try:
            with _writing(self.path, self.tmp), open(self.tmp, "wb") as f:
                write_all(f, data)
        except BaseException:
            self.discard()
            raise
        self.commit()

    def discard(self) -> None:
        """Delete the temporary file (and close a device); nothing is left behind. Safe to repeat."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.tmp is not None:
            tmp, self.tmp = self.tmp, None
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def is_stream_path(path: str | os.PathLike) -> bool:
    """Whether `path` names an existing device or pipe (written in place; a cube goes there as .npy)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextlib.contextmanager
def claim_output(path: str | os.PathLike, force: bool = False) -> Iterator[OutputTarget]:
    """Claim `path` now (OutputTarget); whatever happens inside the block that is not committed,
    including an error or Ctrl-C, leaves nothing behind."""
    target = OutputTarget(path, force)
    try:
        yield target
    finally:
        target.discard()


def probe_directory(directory: str | os.PathLike, create: bool = True) -> None:
    """Create `directory` (with `create`) and check that a file can be made in it, or OutputError:
    an archive run or `hinerc demo -O DIR` must fail before any scene is read, not after."""
    path = Path(directory)
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output directory {path}: {_write_reason(exc)}") from None
    probe = path / f".hinerc-probe.{secrets.token_hex(6)}.tmp"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        if exc.errno == errno.ENOENT and not path.is_dir():
            raise OutputError(f"cannot write into {path}: the directory does not exist") from None
        raise OutputError(f"cannot write into {path}: {_write_reason(exc)}") from None
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _write_reason(exc: BaseException, tmp: Path | None = None) -> str:
    """One line, naming no temporary file, out of what a failed write raised: an OSError, or h5py's
    multi-line HDF5 error stack (an OSError or RuntimeError with `errno = 28` somewhere inside)."""
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    text = str(exc)
    found = re.search(r"errno\s*=\s*(\d+)", text)
    if found and int(found.group(1)):
        return os.strerror(int(found.group(1)))
    found = re.search(r"error message\s*=\s*'([^']*)'", text)
    if found:
        return found.group(1)
    lines = text.strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    if tmp is not None:
        line = line.replace(str(tmp), "").replace(tmp.name, "")
    return " ".join(line.split()) or type(exc).__name__


@contextlib.contextmanager
def _writing(path: Path, tmp: Path | None) -> Iterator[None]:
    """Turn a failed write (a full disk, an I/O error, h5py's own exceptions) into one OutputError line."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        raise OutputError(f"cannot write {path}: {_write_reason(exc, tmp)}") from None


def write_all(out: BinaryIO | int, data: bytes | memoryview) -> None:
    """Write every byte of `data` to a stream or a file descriptor: a short write is retried, a write
    that makes no progress is an error (never a silently cut file)."""
    view = memoryview(data).cast("B")
    while len(view):
        written = os.write(out, view[:1 << 30]) if isinstance(out, int) else out.write(view)
        if written is None:  # a non-blocking stream that would block
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        if written <= 0:
            raise OSError(errno.EIO, "short write: no bytes written")
        view = view[written:]


def _stream_failed(exc: OSError, name: str) -> OutputError:
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE)) from None  # the reader left: exit 141
    return OutputError(f"writing to {name} failed: {_write_reason(exc)}")


def write_stream(stream: BinaryIO, data: bytes | memoryview, name: str = "stdout") -> None:
    """Write `data` to a stream that may not seek (stdout), every byte, then flush; OutputError on a
    failure (a full disk, /dev/full), BrokenPipeError when the reader went away."""
    try:
        view = memoryview(data).cast("B")
        chunk = 16 << 20
        for start in range(0, len(view), chunk):
            write_all(stream, view[start:start + chunk])
        stream.flush()
    except OSError as exc:
        raise _stream_failed(exc, name) from None


@contextlib.contextmanager
def _atomic(path: Path, force: bool, target: OutputTarget | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path` (that of `target` when claimed before); on success fsync it and
    move it over `path`, on any failure delete it."""
    if target is None:
        target = OutputTarget(path, force)
    elif Path(target.path) != Path(path) or target.tmp is None:
        raise ValueError(f"{path}: the claimed output is {target.path}, or was used already")
    try:
        yield target.tmp
        target.commit()
    finally:
        target.discard()


@contextlib.contextmanager
def npy_rows_writer(path: str | os.PathLike, shape: tuple, dtype: np.dtype, force: bool = False,
                    target: OutputTarget | None = None) -> Iterator[Callable[[np.ndarray], None]]:
    """Write a .npy of `shape` as consecutive blocks of rows (each H' x W x C, in order), moved to
    `path` only when all rows came and the block exits cleanly: a cube larger than memory can be
    written one strip at a time, atomically. `target`: the output claimed before the work."""
    dtype = np.dtype(dtype)
    total = int(shape[0])
    written = 0
    path = Path(path)
    with _atomic(path, force, target) as tmp:
        with _writing(path, tmp):
            f = open(tmp, "wb")
        try:
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
            with _writing(path, tmp):
                try:
                    np.lib.format.write_array_header_1_0(f, header)  # what np.save writes, when the header fits
                except ValueError:
                    np.lib.format.write_array_header_2_0(f, header)

            def write(rows: np.ndarray) -> None:
                nonlocal written
                if rows.shape[1:] != tuple(shape[1:]) or written + rows.shape[0] > total:
                    raise ValueError(f"rows of shape {rows.shape} do not continue a {tuple(shape)} array")
                with _writing(path, tmp):
                    write_all(f, np.ascontiguousarray(rows, dtype=dtype).reshape(-1).view(np.uint8))  # no copy
                written += rows.shape[0]

            yield write
            if written != total:
                raise ValueError(f"{written} of {total} rows written")
            with _writing(path, tmp):
                f.close()
        finally:
            with contextlib.suppress(OSError):
                f.close()


def _refuse_overwrite(path: Path, force: bool) -> None:
    if not force and os.path.lexists(path):
        raise OutputExistsError(f"{path} exists; use -f/--force to overwrite it")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    if os.name == "posix":
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, force: bool = False,
                       target: OutputTarget | None = None) -> None:
    """Write `data` to `path` atomically; refuse to overwrite unless `force`; OutputError when it cannot
    be written. `target`: the output claimed (claim_output) before the work that made `data`."""
    if target is None:
        with claim_output(path, force) as target:
            target.write_bytes(data)
        return
    if Path(target.path) != Path(path):
        raise ValueError(f"{path}: the claimed output is {target.path}")
    try:
        target.write_bytes(data)
    finally:
        target.discard()


def write_npy_stream(stream: BinaryIO, data: np.ndarray, name: str = "stdout") -> None:
    """Write `data` as .npy bytes to a stream that may not seek (a pipe such as sys.stdout.buffer),
    every byte checked: OutputError when the write fails, BrokenPipeError when the reader left."""
    arr = np.ascontiguousarray(data)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(arr))
    try:
        write_all(stream, header.getvalue())
        raw = memoryview(arr.reshape(-1).view(np.uint8))
        chunk = 16 << 20
        for start in range(0, len(raw), chunk):
            write_all(stream, raw[start:start + chunk])
        stream.flush()
    except OSError as exc:
        raise _stream_failed(exc, name) from None


def write_cube(path: str | os.PathLike, data: np.ndarray, wavelengths: np.ndarray | None = None,
               key: str = "cube", force: bool = False, target: OutputTarget | None = None,
               metadata: dict | None = None) -> None:
    """Write an H x W x C cube atomically, in the format of the extension (WRITE_EXTENSIONS).

    .npz, .mat and .h5 hold `key` and, if given, `wavelength_nm`; .npy holds the cube only. A .mat
    over 2 GB is written as MATLAB v7.3 (HDF5, axes reversed) since v5 cannot hold it. .hdr/.img
    write an ENVI pair, .tif a GeoTIFF (rasterio), .nc a NetCDF4 file (h5netcdf), each with the
    sensor `metadata` (formats/metadata.py keys: wavelengths, fwhm, nodata, map info, CRS...). A failed
    write (full disk, read-only file system) is one OutputError line; nothing is left behind.
    `target`: the output claimed (claim_output) before the work that made `data`.
    """
    target_path = Path(path)
    ext = target_path.suffix.lower()
    writer = _WRITERS.get(ext)
    if writer is None and ext in (".hdr", ".img", ".tif", ".tiff", ".nc"):
        writer = _write_npy  # placeholder: these are written below, with their metadata
    if writer is None and is_stream_path(target_path):
        writer, ext = _write_npy, ".npy"  # a device or a pipe (/dev/null, a FIFO): .npy, as for stdout
    if writer is None:
        raise InputError(f"cannot write {target_path}: unknown extension {target_path.suffix or '(none)'!r}; "
                         f"use one of {', '.join(WRITE_EXTENSIONS)}")
    arr = np.asarray(data)
    problem = _problem(arr.shape, _kind(arr.dtype), arr.dtype.name)
    if problem:
        raise InputError(f"cannot write {target_path}: the data {problem}")
    wl = None if wavelengths is None else _checked_wavelengths(wavelengths, arr.shape[2], "the wavelengths")
    if ext in (".hdr", ".img"):
        _write_envi(target_path, arr, wl, metadata, force, target)
        return
    if ext in (".tif", ".tiff"):
        _rasterio()  # one line naming the extra, before any work
        with _atomic(target_path, force, target) as tmp, _writing(target_path, tmp):
            _write_tiff(tmp, arr, wl, metadata)
        return
    if ext == ".nc":
        with _atomic(target_path, force, target) as tmp, _writing(target_path, tmp):
            _write_netcdf(tmp, arr, wl, metadata, key)
        return
    key = key.strip("/")
    if not key or (wl is not None and key == "wavelength_nm"):
        raise InputError(f"cannot write {target_path}: invalid variable name {key!r}")
    if ext == ".mat":
        if not _MATLAB_NAME.match(key):
            raise InputError(f"cannot write {target_path}: {key!r} is not a MATLAB variable name")
        if arr.dtype.newbyteorder("=") not in _MATLAB_CLASS:
            raise InputError(f"cannot write {target_path}: MATLAB has no {arr.dtype.name}; use .npy, .npz or .h5")
    with _atomic(target_path, force, target) as tmp, _writing(target_path, tmp):
        writer(tmp, arr, wl, key)


def _write_npy(tmp: Path, data: np.ndarray, wl: np.ndarray | None, key: str) -> None:
    with open(tmp, "wb") as f:
        np.lib.format.write_array(f, data, allow_pickle=False)


def _write_npz(tmp: Path, data: np.ndarray, wl: np.ndarray | None, key: str) -> None:
    """Like np.savez, but any key works (savez's own keyword names, such as "file", would clash)."""
    arrays = {key: data} if wl is None else {key: data, "wavelength_nm": wl}
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def _write_mat(tmp: Path, data: np.ndarray, wl: np.ndarray | None, key: str) -> None:
    if data.nbytes > _MAT5_MAX_BYTES:
        _write_mat73(tmp, data, wl, key)
        return
    import scipy.io

    arrays = {key: data} if wl is None else {key: data, "wavelength_nm": wl.reshape(1, -1)}
    with open(tmp, "wb") as f:
        scipy.io.savemat(f, arrays, format="5", oned_as="row")


def _write_mat73(tmp: Path, data: np.ndarray, wl: np.ndarray | None, key: str) -> None:
    """MATLAB v7.3: HDF5 after a 512-byte MATLAB header, axes reversed as MATLAB stores them."""
    import h5py

    with h5py.File(tmp, "w", userblock_size=512) as h5:
        ds = h5.create_dataset(key, shape=data.shape[::-1], dtype=data.dtype)
        for band in range(data.shape[2]):  # band by band: no full transposed copy of a > 2 GB cube
            ds[band] = data[:, :, band].T
        ds.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[data.dtype.newbyteorder("=")])
        if wl is not None:
            wds = h5.create_dataset("wavelength_nm", data=wl.reshape(-1, 1))  # a 1 x C row in MATLAB
            wds.attrs["MATLAB_class"] = np.bytes_("double")
    text = f"MATLAB 7.3 MAT-file, Platform: hinerc, Created on: {time.asctime()} HDF5 schema 1.00 ."
    header = text.encode("ascii").ljust(116) + bytes(8) + b"\x00\x02IM"  # subsys offset, version, endian
    with open(tmp, "r+b") as f:
        f.write(header.ljust(512, b"\x00"))


def _write_h5(tmp: Path, data: np.ndarray, wl: np.ndarray | None, key: str) -> None:
    import h5py

    with h5py.File(tmp, "w") as h5:
        h5.create_dataset(key, data=data)
        if wl is not None:
            h5.create_dataset("wavelength_nm", data=wl)


_WRITERS = {".npy": _write_npy, ".npz": _write_npz, ".mat": _write_mat, ".h5": _write_h5, ".hdf5": _write_h5}


def _write_envi(path: Path, data: np.ndarray, wl: np.ndarray | None, meta: dict | None, force: bool,
                target: OutputTarget | None) -> None:
    """An ENVI pair (x.hdr and x.img), each file atomic: the data first, the header last, so a header
    never names data that is not there. The interleave of the input is kept (BSQ by default)."""
    header, data_path = envi.envi_pair(path)
    dtype = envi.writable_dtype(data.dtype)
    interleave = (meta or {}).get("interleave", "bsq")
    interleave = interleave if interleave in envi.INTERLEAVES else "bsq"
    text = envi.header_text(data.shape, dtype, meta, interleave, wl)
    claimed = target if target is not None and Path(target.path) == data_path else None
    with claim_output(data_path, force) if claimed is None else contextlib.nullcontext(claimed) as data_target:
        with _atomic(data_path, force, data_target) as tmp, _writing(data_path, tmp):
            envi.write_data(tmp, data, interleave, dtype)
    head_target = target if target is not None and Path(target.path) == header else None
    with _atomic(header, force, head_target) as tmp, _writing(header, tmp):
        tmp.write_text(text, encoding="utf-8")


def _write_tiff(tmp: Path, data: np.ndarray, wl: np.ndarray | None, meta: dict | None) -> None:
    """A GeoTIFF (band-interleaved, deflate), CRS, transform, nodata, band names and per-band
    wavelength/fwhm tags (GDAL's convention, read back by GDAL-based tools) restored."""
    rasterio = _rasterio()
    from rasterio.transform import Affine

    meta = meta or {}
    h, w, c = data.shape
    dtype = data.dtype if data.dtype != np.float16 else np.dtype(np.float32)
    profile = {"driver": "GTiff", "height": h, "width": w, "count": c, "dtype": dtype.name, "compress": "deflate"}
    if meta.get("crs_wkt"):
        profile["crs"] = rasterio.crs.CRS.from_user_input(meta["crs_wkt"])
    if meta.get("transform"):
        profile["transform"] = Affine(*meta["transform"][:6])
    elif meta.get("map_info"):  # an ENVI input: its map info as the GeoTIFF's transform and CRS
        georef = envi.map_info_transform(meta["map_info"])
        if georef is not None:
            profile["transform"] = Affine(*georef)
            if "crs" not in profile and meta.get("coordinate_system_string"):
                with contextlib.suppress(rasterio.errors.CRSError):
                    profile["crs"] = rasterio.crs.CRS.from_wkt(meta["coordinate_system_string"])
    if meta.get("nodata") is not None:
        nd = meta["nodata"]
        profile["nodata"] = float(nd) if not isinstance(nd, str) else float("nan")
    if h >= 16 and w >= 16:
        profile.update(tiled=True, blockxsize=max(16, min(256, w // 16 * 16)), blockysize=max(16, min(256, h // 16 * 16)))
    per_band = dict(meta.get("bands", {}))
    if "wavelength" not in per_band and wl is not None:
        per_band["wavelength"] = [float(v) for v in wl]
        meta = {**meta, "wavelength_units": meta.get("wavelength_units", "Nanometers")}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        _fill_tiff(rasterio.open(tmp, "w", **profile), data, dtype, meta, per_band, c)


def _fill_tiff(ds: object, data: np.ndarray, dtype: np.dtype, meta: dict, per_band: dict, c: int) -> None:
    with ds:
        ds.write(np.ascontiguousarray(data.transpose(2, 0, 1), dtype=dtype))
        tags = dict(meta.get("tags", {}).get("dataset", {}))
        if meta.get("wavelength_units"):
            tags["wavelength_units"] = meta["wavelength_units"]
        if tags:
            ds.update_tags(**tags)
        band_extra = meta.get("tags", {}).get("bands") or [{}] * c
        for i in range(c):
            bt = dict(band_extra[i]) if i < len(band_extra) else {}
            for key in ("wavelength", "fwhm"):
                if key in per_band:
                    bt[key] = repr(float(per_band[key][i]))
            if bt:
                ds.update_tags(i + 1, **bt)
            if "band_names" in per_band and per_band["band_names"][i]:
                ds.set_band_description(i + 1, str(per_band["band_names"][i]))
        if isinstance(meta.get("data_units"), str):
            for i in range(c):
                ds.set_band_unit(i + 1, meta["data_units"])
        if "gain" in per_band and "offset" in per_band:
            ds.scales = tuple(float(v) for v in per_band["gain"])
            ds.offsets = tuple(float(v) for v in per_band["offset"])


def _write_netcdf(tmp: Path, data: np.ndarray, wl: np.ndarray | None, meta: dict | None, key: str) -> None:
    """NetCDF4 (h5netcdf): the cube as (band, y, x), a `wavelength` coordinate on the band
    dimension, fwhm and the variable's attributes (nodata as _FillValue)."""
    try:
        import h5netcdf
    except ImportError:
        raise InputError("writing NetCDF needs h5netcdf: pip install 'hinerc[formats]'") from None
    meta = meta or {}
    h, w, c = data.shape
    key = key.strip("/") or "cube"
    with h5netcdf.File(tmp, "w") as nc:
        nc.dimensions = {"band": c, "y": h, "x": w}
        fill = meta.get("nodata")
        kwargs = {}
        if fill is not None:
            kwargs["fillvalue"] = np.array(float(fill) if not isinstance(fill, str) else np.nan).astype(data.dtype)
        var = nc.create_variable(key, ("band", "y", "x"), dtype=data.dtype, **kwargs)
        var[...] = data.transpose(2, 0, 1)
        per_band = meta.get("bands", {})
        nm = per_band.get("wavelength", wl)
        if nm is not None:
            wv = nc.create_variable("wavelength", ("band",), dtype="f8")
            wv[...] = np.asarray(nm, dtype=np.float64)
            wv.attrs["units"] = meta.get("wavelength_units", "nm") if "wavelength" in per_band else "nm"
        if "fwhm" in per_band:
            fv = nc.create_variable("fwhm", ("band",), dtype="f8")
            fv[...] = np.asarray(per_band["fwhm"], dtype=np.float64)
        if isinstance(meta.get("data_units"), str):
            var.attrs["units"] = meta["data_units"]
        for k, name in (("scale", "scale_factor"), ("offset", "add_offset")):
            if isinstance(meta.get(k), (int, float)):
                var.attrs[name] = float(meta[k])
        for name, value in meta.get("attributes", {}).items():  # a NetCDF input's attributes, verbatim
            if name not in ("_FillValue", "missing_value", "units", "scale_factor", "add_offset") \
                    and not name.startswith("_") and isinstance(value, (str, int, float, list)):
                with contextlib.suppress(TypeError, ValueError):
                    var.attrs[name] = value
        if meta.get("crs_wkt"):
            var.attrs["crs_wkt"] = meta["crs_wkt"]
        if meta.get("map_info"):
            var.attrs["envi_map_info"] = meta["map_info"]
