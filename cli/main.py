"""The `hinerc` command: a thin shell over hinercodec.api.

Everything about cubes and .hnr files lives in the library; this module only turns paths, options
and terminals into library calls, so that scripts and the command behave the same. Data goes to
stdout only when asked for with `-o -` (or --json); logs, progress and errors go to stderr.
"""
from __future__ import annotations

import contextlib
import io
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Union

import click
import numpy as np

from hinercodec import __version__
from hinercodec.cli._errors import HinercGroup
from hinercodec.cli._params import (DEFAULT_DEVICE, DEVICE, DEVICE_HELP, FINITE_NONNEGATIVE, POSITIVE, TILE, WINDOW, BandList,
                                    FloatList, check_device, flatten)
from hinercodec.cli._progress import ProgressPrinter
from hinercodec.cli._report import echo, eval_rows, info_rows, print_json, print_rows
from hinercodec.errors import InputError
from hinercodec.formats import cubeio

# Defaults repeated from hinercodec.api.EncodeOptions so that `--help` does not import the model
# code; tests/test_cli.py checks that both agree.
DEFAULT_BPPPB = 0.2
DEFAULT_MODEL = "transform"
DEFAULT_BITS = 8
DEFAULT_EFFORT = 3
DEFAULT_TILE = 512
WRITE_CHUNK = 1 << 24  # bytes of decoded rows a tiled decode to .npy renders and writes at a time
DEFAULT_SPLIT = "difficulty"

_NUMBERS = re.compile(r"\s*[-+0-9.eE]+\s*([,:]\s*[-+0-9.eE]+\s*)*\Z")
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "show_default": True}


def _api():
    """The library, imported on first use: `--help`, `--version` and usage errors stay instant."""
    from hinercodec import api

    return api


def _stdout():
    """Binary stdout, looked up at each call because click's test runner swaps sys.stdout."""
    return sys.stdout.buffer


def _default_output(source: str, name: str) -> str:
    """`name` with '{stem}' replaced, next to `source`; reading stdin leaves no name to derive one from."""
    if source == "-":
        raise click.UsageError("reading stdin ('-') needs -o/--output")
    path = Path(source)
    return str(path.with_name(name.format(stem=path.stem)))


def _check_extension(path: str) -> None:
    """An unknown cube extension is a usage error, found before the work starts (a device or a pipe
    such as /dev/null gets .npy, as stdout does)."""
    if path != "-" and Path(path).suffix.lower() not in cubeio.WRITE_EXTENSIONS and not cubeio.is_stream_path(path):
        raise click.BadParameter(f"{path}: unknown extension; use one of {', '.join(cubeio.WRITE_EXTENSIONS)}",
                                 param_hint="'-o/--output'")


@contextlib.contextmanager
def _claim(path: str, force: bool) -> Iterator[Optional[cubeio.OutputTarget]]:
    """Claim OUT before anything is read: its temporary file is made beside it now, so a missing
    directory, a read-only file system, a directory named as OUT (exit 9) or an existing OUT without
    --force (exit 6) fail at once; the writers fill that same file and rename it at the end, and on
    any failure or Ctrl-C it is removed. '-' (stdout) claims nothing."""
    if path == "-":
        yield None
        return
    with cubeio.claim_output(path, force) as target:
        yield target


def _check_options(options):
    """The library's own check of the option values and their combination (e.g. --bits with the
    transform model), run before OUT is claimed and INPUT is read: a usage error exits 2 at once.
    Returns the options as they will run (--lossless/--max-error select the lossless codec)."""
    from hinercodec.options import check, resolved
    from hinercodec.registry import ENCODABLE

    options = resolved(options)
    check(options, ENCODABLE)
    return options


def _wavelength_source(text: Optional[str]) -> Union[None, str, np.ndarray]:
    """--wavelengths: numbers ('400:10:590', '400,410') or a .txt/.csv/.npy file, else a variable name."""
    if text is None:
        return None
    if _NUMBERS.match(text) or Path(text).suffix.lower() in (".txt", ".csv", ".npy") or Path(text).is_file():
        try:
            return cubeio.parse_wavelengths(text)
        except InputError as exc:  # a malformed option value: a usage error, before any work
            raise click.BadParameter(str(exc), param_hint="'--wavelengths'") from None
    return text


def _write_array(path: str, data: np.ndarray, wavelengths: Optional[np.ndarray], force: bool,
                 target: Optional[cubeio.OutputTarget], metadata: Optional[dict] = None) -> None:
    """Cube to OUT by extension ('-' = .npy on stdout); a single H x W band only as .npy for now.
    `target`: OUT as claimed before the work (_claim)."""
    if path == "-":
        cubeio.write_npy_stream(_stdout(), data)
    elif data.ndim == 2 and (Path(path).suffix.lower() == ".npy" or cubeio.is_stream_path(path)):
        # write_cube takes 3-D cubes only
        buffer = io.BytesIO()
        np.save(buffer, data, allow_pickle=False)
        cubeio.atomic_write_bytes(path, buffer.getvalue(), force=force, target=target)
    else:
        if wavelengths is not None and not _monotonic(wavelengths):
            click.echo(f"hinerc: warning: wavelengths not written to {path}: the bands asked for are not in "
                       "wavelength order, and cube files need them strictly increasing or decreasing", err=True)
            wavelengths = None
        cubeio.write_cube(path, data, wavelengths=wavelengths, key="cube", force=force, target=target,
                          metadata=metadata)


def _monotonic(values: np.ndarray) -> bool:
    steps = np.diff(np.asarray(values, dtype=np.float64))
    return bool((steps > 0).all() or (steps < 0).all())


@contextlib.contextmanager
def _open_hnr(path: str, window: Optional[tuple]) -> Iterator[Union[bytes, BinaryIO]]:
    """The .hnr to decode: for a window of a file on disk, the open file (a tiled file is then read
    tile by tile, only the tiles under the window); otherwise all its bytes, validated at once."""
    if window is None or path == "-":
        yield cubeio.read_input_bytes(path)
        return
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with stream:
        yield stream


@click.group("hinerc", cls=HinercGroup, context_settings=_CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="hinerc", message="%(prog)s %(version)s")
def main() -> None:
    """Compress hyperspectral cubes (H x W x C) into .hnr files: a spectral transform codec by
    default (--model transform, no network, decoded with numpy), optional neural models (latent,
    hiner, lowrank), and bands at any wavelength from the file's model.

    \b
    Examples:
      hinerc encode scene.mat --bpppb 0.2        # -> scene.hnr
      hinerc decode scene.hnr -o scene_dec.mat
      hinerc interp scene.hnr --nm 555 -o band555.npy
      hinerc info scene.hnr
      hinerc eval scene.mat scene.hnr
      hinerc classify scene.hnr --labels scene.mat:labels

    \b
    Exit codes (every failure is one line on stderr):
      0    success
      1    internal error (a bug: please report it)
      2    usage error: unknown option, bad option value or combination
      3    bad input cube: missing, unreadable, ambiguous, not 3-D, NaN/Inf
      4    corrupt, truncated or foreign .hnr file
      5    unsupported .hnr (newer major version, unknown critical chunk)
      6    output exists (use -f/--force)
      7    request outside the file (wavelength, band or window)
      8    some scenes of an archive run failed (see the manifest)
      9    output cannot be written: missing directory, OUT is a directory,
           read-only or full file system, stdout write failed
      130  interrupted (Ctrl-C)
      141  stdout closed early (e.g. | head)
    No partial or temporary output is left behind on any failure.
    Set HINERC_DEBUG=1 to see tracebacks.
    """


@main.command(short_help="Compress cubes into .hnr files (one, or a whole archive).")
@click.argument("inputs", metavar="INPUT...", nargs=-1)
@click.option("-o", "--output", metavar="OUT", show_default="INPUT with suffix .hnr",
              help="Output .hnr file of a single INPUT; '-' writes it to stdout. Checked before INPUT is read: "
                   "a missing directory or a directory as OUT fails at once (exit 9).")
@click.option("-O", "--output-dir", metavar="DIR", default=None,
              help="Encode every INPUT to DIR/<stem>.hnr (an archive run; see also --from-list).")
@click.option("--from-list", "file_list", metavar="FILE", default=None,
              help="Also encode the paths in FILE, one per line ('-' = stdin; '#' lines skipped).")
@click.option("--workers", type=click.IntRange(min=0), default=None, show_default="one per core, or per GPU",
              help="Local Dask workers for an archive run; 0 = one scene after another in this process.")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Run the scenes on an existing Dask cluster (tcp://HOST:PORT) instead of a local one.")
@click.option("--manifest", metavar="FILE", default=None, show_default="DIR/manifest.jsonl",
              help="Append one JSON line per scene (status, shape, bpppb, PSNR_band, seconds, worker).")
@click.option("--bpppb", type=POSITIVE, default=DEFAULT_BPPPB,
              help="Rate target in bits per pixel per band (a finite number above 0): the file gets at most this "
                   "rate and at least 90% of it (above the rate of the exact file: the exact file).")
@click.option("--key", metavar="VAR",
              help="Variable/dataset holding the cube (needed when INPUT has several 3-D arrays).")
@click.option("--wavelengths", metavar="VAR|LIST", show_default="a wavelength variable of INPUT, if any",
              help="Band centres in nm: a variable of INPUT, 'first:step:last', 'nm,nm,...' or a .txt/.npy file.")
@click.option("--layout", type=click.Choice(["hwc", "chw", "hcw"]), default=None, show_default="from the file",
              help="Order of the stored axes (h rows, w columns, c bands) when the file does not say it (ENVI "
                   "interleave, a NetCDF band/wavelength dimension, a wavelength vector of one axis's length). "
                   "Without it an array is H x W x C, but one whose first axis is the shortest is refused as "
                   "ambiguous.")
@click.option("--nodata", type=float, default=None, metavar="V", show_default="from the file (and NaN pixels)",
              help="Pixels whose bands all equal V are nodata: coded as a mask, left out of the fit and the "
                   "metrics, decoded as exactly V.")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="transform (spectral basis x wavelet images, no training; from 1 bpppb up to lossless also the "
                   "error-bounded codec), lossless (the error-bounded codec alone), or a fitted network: hiner (the "
                   "paper's), latent, lowrank (experimental encoders).")
@click.option("--bits", type=click.IntRange(4, 10), default=DEFAULT_BITS, help="Quantisation bits of the weights.")
@click.option("--effort", type=click.IntRange(1, 9), default=DEFAULT_EFFORT,
              help="1 (fast) .. 9 (slow, better quality): the search of the transform model, the epochs of the networks.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, show_default="from --effort",
              help="Training epochs (overrides --effort).")
@click.option("--seed", type=int, default=0, help="Random seed: the same input, options and seed give the same file.")
@click.option("--device", type=DEVICE, default=DEFAULT_DEVICE, metavar="DEVICE", help=DEVICE_HELP)
@click.option("--tile", type=TILE, default=None, metavar="N",
              help="Split a cube with a side over N pixels into tiles of at most N x N, each fitted on its own "
                   f"and decodable alone (a tiled .hnr, format 2.0); 0: never tile, else at least {TILE.MIN_TILE}. "
                   f"Default: {DEFAULT_TILE} for the network models; the transform model tiles only cubes of over "
                   "2**25 values or 2**23 / min(bands, 32) pixels.")
@click.option("--split", type=click.Choice(["equal", "difficulty"]), default=DEFAULT_SPLIT,
              help="How tiles share the bytes: by pixel count, or more to tiles with more detail.")
@click.option("--threads", type=click.IntRange(min=1), default=None, show_default="one per core",
              help="Tiles of a large cube fitted at once (transform model; the same file for any count). "
                   "Each one in flight holds its own working memory: --threads 1 for the least.")
@click.option("--optimise", type=click.Choice(["psnr_band", "psnr_global"]), default="psnr_band", show_default=True,
              help="What the transform model maximises: the mean of per-band PSNRs (bands weighted ~1 / their "
                   "error) or the PSNR of the whole normalised cube (plain MSE).")
@click.option("--lossless", is_flag=True,
              help="Every value back exactly (float cubes bit for bit); the rate is what it takes. Not with --bpppb.")
@click.option("--max-error", type=FINITE_NONNEGATIVE, default=None, metavar="E",
              help="Every decoded value within E of the original, in the cube's own units (an integer for integer "
                   "cubes); the rate is what it takes. Not with --bpppb.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary on stderr.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON on stdout (on stderr with -o -).")
def encode(inputs: tuple, output: Optional[str], output_dir: Optional[str], file_list: Optional[str],
           workers: Optional[int], scheduler: Optional[str], manifest: Optional[str], bpppb: float, key: Optional[str],
           wavelengths: Optional[str], layout: Optional[str], nodata: Optional[float], model: str, bits: int,
           effort: int, epochs: Optional[int], seed: int,
           device: str, tile: int, split: str, threads: Optional[int], optimise: str, lossless: bool,
           max_error: Optional[float], force: bool, quiet: bool, as_json: bool) -> None:
    """Compress INPUT (.mat v5/v7.3, .h5/.hdf5, NetCDF .nc, .npy, .npz, ENVI .hdr or its data file,
    GeoTIFF .tif; '-' = stdin) into a .hnr file, with the file's metadata (fwhm, bad bands, map
    info, CRS, nodata...) kept in it.

    The summary (output, bpppb, size, PSNR_band, wall-clock seconds from reading to the file on
    disk, device) goes to stderr, or with --json to stdout. The default model (transform) codes
    the cube whole up to 2**25 values (and 2**23 / min(bands, 32) pixels); a cube with a side over
    --tile pixels (auto: see --tile) is read, coded and stored tile by tile (a tiled .hnr that
    decodes by windows).

    With several inputs, --from-list or -O, every scene is encoded to its own file (an archive run:
    a bad scene is reported and the others finish, exit code 8; a rerun skips valid outputs; on
    Dask when installed, `pip install 'hinerc[cluster]'`).

    \b
    Examples:
      hinerc encode houston.mat --bpppb 0.1
      hinerc encode pavia.mat --key data --wavelengths 430:4:834 -o pavia.hnr
      cat cube.npy | hinerc encode - -o - --quiet > cube.hnr
      hinerc encode scenes/*.mat -O out/ --workers 4
    """
    started = time.perf_counter()
    if not inputs and file_list is None:
        raise click.UsageError("give an INPUT cube (or --from-list FILE)")
    from hinercodec.options import EncodeOptions
    from hinercodec.registry import ENCODABLE

    if model not in ENCODABLE:
        raise click.BadParameter(f"unknown model {model!r} (known: {', '.join(ENCODABLE)})", param_hint="'--model'")
    check_device(device)
    options = _check_options(EncodeOptions(bpppb=bpppb, model=model, bits=bits, effort=effort, epochs=epochs,
                                           seed=seed, device=device, tile=tile, split=split, threads=threads,
                                           optimise=optimise,
                                           lossless=lossless, max_error=max_error))
    if len(inputs) > 1 or file_list is not None or output_dir is not None:
        if output is not None:
            raise click.UsageError("-o names one output; with several inputs use -O/--output-dir")
        if as_json:
            raise click.UsageError("--json is for one input; an archive run writes a manifest (--manifest)")
        from hinercodec.cli._archive import encode_many

        raise click.exceptions.Exit(encode_many(list(inputs), output_dir, file_list, options, workers=workers,
                                                scheduler=scheduler, manifest=manifest, force=force, quiet=quiet,
                                                key=key, wavelengths=_wavelength_source(wavelengths),
                                                layout=layout, nodata=nodata))
    if workers is not None or scheduler is not None or manifest is not None:
        raise click.UsageError("--workers, --scheduler and --manifest are for archive runs (several inputs or -O)")
    input = inputs[0]
    out = output or _default_output(input, "{stem}.hnr")
    wavelength_source = _wavelength_source(wavelengths)
    from hinercodec.scene import encode_file

    with _claim(out, force) as target:  # before INPUT is read: a bad OUT fails at once
        printer = None if quiet else ProgressPrinter()
        try:
            summary, data = encode_file(input, None if out == "-" else out, options, key=key,
                                        wavelengths=wavelength_source, force=force, progress=printer, target=target,
                                        layout=layout, nodata=nodata)
        finally:
            if printer is not None:
                printer.close()
        if out == "-":
            cubeio.write_stream(_stdout(), data)
    summary["output"] = out
    summary["seconds"] = time.perf_counter() - started
    if as_json:
        print_json(summary, err=out == "-")
    elif not quiet:
        click.echo(f"{input} -> {out}: {summary['bytes']} bytes, {summary['bpppb']:.4f} bpppb, "
                   f"PSNR_band {summary['psnr_band']:.2f} dB, {summary['seconds']:.1f} s on {summary['device']}",
                   err=True)


@main.command(short_help="Rebuild the cube (or some bands) from a .hnr file.")
@click.argument("input", metavar="IN.hnr")
@click.option("-o", "--output", metavar="OUT", show_default="IN with suffix .npy",
              help="Output .npy, .npz, .mat, .h5, .hdf5, ENVI .hdr/.img (the pair), GeoTIFF .tif or NetCDF .nc (by "
                   "extension; the last three with the file's metadata); '-' writes .npy to stdout.")
@click.option("--bands", type=BandList(), default=None, show_default="all",
              help="0-based bands to decode, in this order; ranges inclusive: '0,5,10-20'.")
@click.option("--window", type=WINDOW, default=None, show_default="the whole image",
              help="Rows Y0..Y1-1 and columns X0..X1-1 only (0-based, end exclusive); of a tiled file only the "
                   "tiles under the window are read.")
@click.option("--device", type=DEVICE, default=DEFAULT_DEVICE, metavar="DEVICE", help=DEVICE_HELP)
@click.option("-f", "--force", is_flag=True, help="Overwrite OUT if it exists.")
def decode(input: str, output: Optional[str], bands: Optional[list[int]], window: Optional[tuple], device: str,
           force: bool) -> None:
    """Decode IN.hnr ('-' = stdin) to a cube in its original dtype and units.

    .npz, .mat and .h5 outputs hold the cube as variable 'cube' and, when the file has them, the
    band centres as 'wavelength_nm'. ENVI, GeoTIFF and NetCDF outputs get the input's metadata back
    (wavelengths and fwhm of the bands asked for, the window's own map info / transform, nodata).

    \b
    Examples:
      hinerc decode houston.hnr                      # -> houston.npy
      hinerc decode houston.hnr -o dec.mat --bands 0-9
      hinerc decode scene.hnr --window 0:256,512:768 -o corner.npy
      hinerc decode houston.hnr -o - | python -c \\
          "import io, numpy, sys; print(numpy.load(io.BytesIO(sys.stdin.buffer.read())).shape)"
    """
    out = output or _default_output(input, "{stem}.npy")
    _check_extension(out)
    check_device(device)
    with _claim(out, force) as target, _open_hnr(input, window) as source:  # OUT first: a bad one fails at once
        decoder = _api().Decoder(source, device)
        if decoder.tiled and out != "-" and Path(out).suffix.lower() == ".npy":
            _decode_tiled_npy(decoder, out, bands, window, force, target)  # row of tiles by row: bounded memory
            return
        cube = decoder.bands(bands, window=window)
        wavelengths = decoder.wavelengths
        if wavelengths is not None and bands is not None:
            wavelengths = wavelengths[bands]
        from hinercodec.formats.metadata import for_output

        _write_array(out, cube, wavelengths, force, target, for_output(decoder.metadata, bands, window))


def _decode_tiled_npy(decoder, out: str, bands: Optional[list[int]], window: Optional[tuple], force: bool,
                      target: Optional[cubeio.OutputTarget]) -> None:
    """A tiled file to .npy one row of tiles at a time, straight into the file: the decoded cube is
    never whole in memory (a large scene's cube may not fit). A row's tile models are built once
    and rendered a band of about WRITE_CHUNK bytes of rows at a time, each band written in a thread
    while the next is rendered (at most one write in flight: two bands in memory), so that the
    last write to wait for is one band's, not a row of tiles'."""
    h, w, c = decoder.shape
    y0, y1, x0, x1 = window or (0, h, 0, w)
    count = c if bands is None else len(bands)
    edges = [e for e in decoder.grid.y_edges if y0 < e < y1]
    step = max(1, WRITE_CHUNK // max(1, (x1 - x0) * count * np.dtype(decoder.dtype).itemsize))
    with cubeio.npy_rows_writer(out, (y1 - y0, x1 - x0, count), decoder.dtype, force=force, target=target) as write, \
            ThreadPoolExecutor(1) as writer:
        pending, n = None, 0
        memory = [np.empty((step, x1 - x0, count), decoder.dtype) for _ in range(2)]  # rendered / being written
        for s0, s1 in zip([y0] + edges, edges + [y1]):
            for r0 in range(s0, s1, step):
                r1 = min(s1, r0 + step)
                rows = decoder.bands(bands, window=(r0, r1, x0, x1), out=memory[n % 2][:r1 - r0])
                n += 1
                if pending is not None:
                    pending.result()  # the band before is written (a failed write raises here)
                pending = writer.submit(write, rows)
            decoder.forget()  # this row's tile models: their memory goes to the next row's
        if pending is not None:
            pending.result()


@main.command(short_help="Bands at any wavelength, between the coded ones.")
@click.argument("input", metavar="IN.hnr")
@click.option("--lambda", "lambdas", type=FloatList(0.0, 1.0), multiple=True, metavar="T",
              help="Normalised wavelength in [0, 1] (0 = first band, 1 = last); repeatable.")
@click.option("--nm", type=FloatList(), multiple=True, metavar="X",
              help="Wavelength in nm (the file must have wavelengths); repeatable.")
@click.option("-o", "--output", metavar="OUT", show_default="IN stem + _interp.npy",
              help="Output .npy, .npz, .mat, .h5, .hdf5, ENVI (.hdr/.img), GeoTIFF (.tif) or NetCDF (.nc); "
                   "'-' writes .npy to stdout.")
@click.option("--window", type=WINDOW, default=None, show_default="the whole image",
              help="Rows Y0..Y1-1 and columns X0..X1-1 only (0-based, end exclusive).")
@click.option("--device", type=DEVICE, default=DEFAULT_DEVICE, metavar="DEVICE", help=DEVICE_HELP)
@click.option("-f", "--force", is_flag=True, help="Overwrite OUT if it exists.")
def interp(input: str, lambdas: tuple, nm: tuple, output: Optional[str], window: Optional[tuple], device: str,
           force: bool) -> None:
    """Bands of IN.hnr at any wavelength, between the coded ones, rebuilt from the file's model
    (the default transform model interpolates its band table in wavelength, Akima splines; a network
    model is evaluated there).

    The output is H x W for one wavelength (.npy) and H x W x K for K wavelengths (in the order
    asked), in the dtype of the original cube. Both options also take comma lists (--nm 410,430).
    ENVI, GeoTIFF and NetCDF outputs (one band too) carry the scene's metadata as `decode` writes
    it, with the wavelengths asked for (and fwhm interpolated between the coded bands).

    \b
    Examples:
      hinerc interp houston.hnr --nm 555 -o band555.npy
      hinerc interp houston.hnr --lambda 0.25 --lambda 0.75 -o two.mat
    """
    t_list, nm_list = flatten(lambdas), flatten(nm)
    if (t_list is None) == (nm_list is None):
        raise click.UsageError("give the wavelengths with either --lambda or --nm (one of them)")
    out = output or _default_output(input, "{stem}_interp.npy")
    _check_extension(out)
    sensor_format = out != "-" and Path(out).suffix.lower() in (".hdr", ".img", ".tif", ".tiff", ".nc")
    if (len(t_list or nm_list) == 1 and out != "-" and Path(out).suffix.lower() != ".npy"
            and not cubeio.is_stream_path(out) and not sensor_format):
        # cubeio.write_cube writes 3-D cubes only; say so before any work
        raise click.BadParameter(f"{out}: a single band (H x W) is written as .npy only; "
                                 "use -o NAME.npy (or .hdr, .tif, .nc) or ask for two or more wavelengths",
                                 param_hint="'-o/--output'")
    check_device(device)
    with _claim(out, force) as target, _open_hnr(input, window) as source:  # OUT first: a bad one fails at once
        decoder = _api().Decoder(source, device)
        stack = decoder.at(decoder.nm_to_t(nm_list) if nm_list is not None else t_list, window=window)
        file_nm = decoder.wavelengths
        if nm_list is not None:
            wavelengths = np.asarray(nm_list, dtype=np.float64)
        elif file_nm is not None:
            wavelengths = file_nm[0] + np.asarray(t_list, dtype=np.float64) * (file_nm[-1] - file_nm[0])
        else:
            wavelengths = None
        if stack.shape[-1] == 1 and not sensor_format:
            stack = stack[..., 0]
        from hinercodec.formats.metadata import for_interp

        _write_array(out, stack, wavelengths, force, target,
                     for_interp(decoder.metadata, wavelengths, file_nm, window))


@main.command(short_help="Describe a .hnr file without decoding it.")
@click.argument("input", metavar="IN.hnr")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def info(input: str, as_json: bool) -> None:
    """Shape, dtype, size, bpppb, chunks, model, wavelengths and versions of IN.hnr ('-' = stdin).

    \b
    Examples:
      hinerc info houston.hnr
      hinerc info houston.hnr --json | python -m json.tool
    """
    summary = _api().info(cubeio.read_input_bytes(input))
    if as_json:
        print_json(summary)
    else:
        print_rows(info_rows(summary))


@main.command("eval", short_help="Compare a .hnr file with the original cube.")
@click.argument("original", metavar="ORIGINAL")
@click.argument("input", metavar="IN.hnr")
@click.option("--key", metavar="VAR", help="Variable/dataset holding the cube in ORIGINAL.")
@click.option("--layout", type=click.Choice(["hwc", "chw", "hcw"]), default=None, show_default="from the file",
              help="Order of ORIGINAL's stored axes when the file does not say it (as for encode).")
@click.option("--device", type=DEVICE, default=DEFAULT_DEVICE, metavar="DEVICE", help=DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def evaluate(original: str, input: str, key: Optional[str], layout: Optional[str], device: str,
             as_json: bool) -> None:
    """Rate and distortion of IN.hnr against ORIGINAL: bpppb, PSNR_band, PSNR_global, SAM.

    PSNR_band leaves out constant bands (listed); metrics as defined in PROTOCOL.md; a file with
    nodata pixels is measured over its valid pixels, and whether its nodata came back exactly is shown.

    \b
    Examples:
      hinerc eval houston.mat houston.hnr
      hinerc eval pavia.mat pavia.hnr --key data --json
    """
    if original == "-" and input == "-":
        raise click.UsageError("only one of ORIGINAL and IN.hnr can be stdin ('-')")
    check_device(device)
    cube = cubeio.read_cube(original, key=key, layout=layout)
    metrics = _api().evaluate(cube.data, cubeio.read_input_bytes(input), device=device)
    if as_json:
        print_json(metrics)
    else:
        print_rows(eval_rows(metrics))


@main.command(short_help="Encode and decode the small real scene shipped with hinerc.")
@click.option("--bpppb", type=POSITIVE, default=DEFAULT_BPPPB,
              help="Rate target in bits per pixel per band (a finite number above 0).")
@click.option("--effort", type=click.IntRange(1, 9), default=DEFAULT_EFFORT, help="1 (fast) .. 9 (slow, better).")
@click.option("--device", type=DEVICE, default=DEFAULT_DEVICE, metavar="DEVICE", help=DEVICE_HELP)
@click.option("-O", "--output-dir", metavar="DIR", default=None, show_default="a temporary folder",
              help="Keep sample.hnr in DIR (a directory, created if needed; -O as for `encode -O`, since -o "
                   "names a file elsewhere).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def demo(bpppb: float, effort: int, device: str, output_dir: Optional[str], quiet: bool) -> None:
    """Compress a 64 x 64 x 48 crop of the Houston 2018 scene (shipped in the package), write the .hnr,
    decode it from the file and print the true bpppb, PSNR_band and times.

    \b
    Example:
      hinerc demo --effort 2 -O demo_out/
    """
    import tempfile

    if output_dir is not None:
        cubeio.probe_directory(output_dir)  # created and writable, or exit 9 before any work
    check_device(device)
    from hinercodec import demo as demo_mod

    api = _api()
    options = api.EncodeOptions(bpppb=bpppb, effort=effort, device=device)
    printer = None if quiet else ProgressPrinter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(output_dir) if output_dir else Path(tmp)
        try:
            report = demo_mod.run(workdir, options, printer)
        finally:
            if printer is not None:
                printer.close()
    echo(f"input     {report['input']}")
    echo(f"file      {report['output'] if output_dir else 'sample.hnr (temporary)'}: {report['bytes']} bytes")
    echo(f"rate      {report['bpppb']:.4f} bpppb (target {report['target_bpppb']:g})")
    echo(f"quality   PSNR_band {report['psnr_band']:.2f} dB, PSNR_global {report['psnr_global']:.2f} dB, "
               f"SAM {report['sam_deg']:.3f} deg")
    echo(f"decoded   uint16 restored: {report['dtype_restored']}, max abs error {report['max_abs_error']}")
    echo(f"time      encode {report['encode_s']:.1f} s, decode {report['decode_s']:.2f} s on {report['device']}")


def _register_classify() -> None:
    from hinercodec.cli.classify import classify

    main.add_command(classify)


_register_classify()

if __name__ == "__main__":  # python -m hinercodec.cli.main (the benchmarks run it as a child process)
    main()
