"""The `hinerc` command end to end, on a real crop of the Houston 2018 scene.

One tiny encode is shared by the whole module (module-scoped fixtures) so the file runs in well
under two minutes on two CPU cores; the stdin/stdout pipelines run the installed `hinerc`.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hinercodec import api
from hinercodec.cli import main as cli
from hinercodec.cli._progress import ProgressPrinter

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HINERC = str(Path(sys.executable).with_name("hinerc"))
FAST = ["--effort", "1", "--bpppb", "0.5", "--device", "cpu"]  # a rate the 32 x 32 x 48 crop can fill
H, W, C = 32, 32, 48


def run(*args: str, input: bytes | None = None):
    """Invoke the command in-process; bugs (uncaught exceptions) fail the test loudly."""
    return CliRunner().invoke(cli.main, [str(a) for a in args], input=input, catch_exceptions=False)


def assert_one_line_error(result, code: int) -> None:
    assert result.exit_code == code, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hinerc: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.fixture(scope="module")
def crop(tmp_path_factory) -> dict:
    """32 x 32 x 48 of houston2018_crop.mat (uint16) as .npy (no wavelengths) and .npz (with them)."""
    if not DATA.is_dir():
        pytest.skip("../shared/data not found")
    from scipy.io import loadmat

    mat = loadmat(DATA / "houston2018_crop.mat")
    cube = np.ascontiguousarray(mat["houston"][40:40 + H, 50:50 + W, :C])
    wl = mat["wavelength_nm"].ravel().astype(np.float64)
    d = tmp_path_factory.mktemp("crop")
    np.save(d / "crop.npy", cube)
    np.savez(d / "crop.npz", cube=cube, wavelength_nm=wl)
    return {"dir": d, "cube": cube, "wl": wl, "npy": d / "crop.npy", "npz": d / "crop.npz"}


@pytest.fixture(scope="module")
def encoded(crop) -> dict:
    """crop.npz (with wavelengths) encoded through CliRunner, with the --json summary."""
    out = crop["dir"] / "enc.hnr"
    result = run("encode", crop["npz"], "-o", out, *FAST, "--quiet", "--json")
    assert result.exit_code == 0, result.stderr
    return {"path": out, "bytes": out.read_bytes(), "summary": json.loads(result.stdout)}


@pytest.fixture(scope="module")
def encoded_nowl(crop) -> dict:
    """crop.npy (no wavelengths) encoded by the installed command from stdin to stdout."""
    with open(crop["npy"], "rb") as stdin:
        proc = subprocess.run([HINERC, "encode", "-", "-o", "-", *FAST, "--quiet"], stdin=stdin,
                              capture_output=True, timeout=300)
    path = crop["dir"] / "nowl.hnr"
    path.write_bytes(proc.stdout)
    return {"path": path, "proc": proc}


# ---------------------------------------------------------------- help, version, defaults

@pytest.mark.parametrize("command", [[], ["encode"], ["decode"], ["interp"], ["info"], ["eval"]])
def test_help_has_examples(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage: " in result.stdout and "Examples:" in result.stdout


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"hinerc {cli.__version__}"


def test_cli_defaults_are_the_library_defaults():
    opts = api.EncodeOptions()
    assert (cli.DEFAULT_BPPPB, cli.DEFAULT_MODEL, cli.DEFAULT_BITS, cli.DEFAULT_EFFORT,
            cli.DEFAULT_SPLIT) == (opts.bpppb, opts.model, opts.bits, opts.effort, opts.split)
    # --tile: no default on either side (auto: api.tile_for), the help names the network models' side
    assert opts.tile is None and cli.DEFAULT_TILE == api.tiling.DEFAULT_TILE


def test_help_describes_the_codec_as_it_is():
    """The default model has no network: the help must not say otherwise (issue 14, item 5)."""
    top = " ".join(run("--help").stdout.split())
    assert "neural representations" not in top and "transform" in top and "optional neural models" in top
    assert " 9 output cannot be written" in top
    text = " ".join(run("interp", "--help").stdout.split())
    assert "fitted network" not in text and "any wavelength" in text and "file's model" in text


@pytest.mark.parametrize("command", ["encode", "decode", "interp", "eval", "demo"])
def test_device_has_one_default(command):
    """--device: auto everywhere (cuda when available, else cpu), and the help says the default model ignores it."""
    param = next(p for p in cli.main.commands[command].params if p.name == "device")
    assert param.default == "auto"
    text = " ".join(run(command, "--help").stdout.split())
    assert "auto (cuda when available, else cpu)" in text and "ignores it" in text


def test_demo_output_dir_is_capital_o():
    param = next(p for p in cli.main.commands["demo"].params if p.name == "output_dir")
    assert param.opts == ["-O", "--output-dir"]


def test_help_does_not_import_torch():
    code = "import sys; from hinercodec.cli.main import main; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------- encode / decode

def test_encode_summary(encoded, crop):
    s = encoded["summary"]
    assert s["output"] == str(encoded["path"]) and s["bytes"] == len(encoded["bytes"])
    assert s["bpppb"] == pytest.approx(8 * len(encoded["bytes"]) / (H * W * C))
    assert s["shape"] == [H, W, C] and s["dtype"] == "uint16" and s["device"] == "cpu"
    assert s["seconds"] > 0 and np.isfinite(s["psnr_band"])


def test_encode_human_summary_and_default_output(crop, tmp_path):
    src = tmp_path / "scene.npy"
    shutil.copy(crop["npy"], src)
    result = run("encode", src, *FAST)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "scene.hnr").is_file() and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert "scene.hnr" in last and "bpppb" in last and "PSNR_band" in last and "cpu" in last


@pytest.mark.parametrize("spec", ["380:10:850", "list", "file", "wavelength_nm", None])
def test_encode_wavelengths_option(crop, tmp_path, monkeypatch, spec):
    """What --wavelengths hands the library (the encode itself is replaced: this is about parsing)."""
    seen = {}

    def fake_encode(cube, wavelengths, options, progress):
        seen.update(wavelengths=wavelengths, options=options)
        return api.EncodeResult(data=b"hnr", bpppb=1.0, psnr_band=30.0, seconds=0.0, device="cpu")

    monkeypatch.setattr(api, "encode", fake_encode)
    expected = np.arange(380.0, 851.0, 10.0)
    if spec == "list":
        spec = ",".join(f"{x:g}" for x in expected)
    elif spec == "file":
        spec = str(tmp_path / "wl.txt")
        Path(spec).write_text("\n".join(f"{x:g}" for x in expected))
    args = ["encode", crop["npz"], "-o", tmp_path / "o.hnr", "--seed", "3", "-q"]
    result = run(*args, *([] if spec is None else ["--wavelengths", spec]))
    assert result.exit_code == 0, result.stderr
    if spec in ("wavelength_nm", None):  # named, or found by its name
        expected = crop["wl"]
    np.testing.assert_allclose(seen["wavelengths"], expected)
    assert (seen["options"].seed, seen["options"].bpppb) == (3, cli.DEFAULT_BPPPB)
    assert (tmp_path / "o.hnr").read_bytes() == b"hnr" and result.stdout == result.stderr == ""


def test_decode_round_trip_restores_dtype_shape_and_wavelengths(encoded, crop, tmp_path):
    out = tmp_path / "dec.npz"
    result = run("decode", encoded["path"], "-o", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    with np.load(out) as z:
        cube, wl = z["cube"], z["wavelength_nm"]
    assert cube.dtype == np.uint16 and cube.shape == (H, W, C)
    np.testing.assert_allclose(wl, crop["wl"], rtol=1e-6)
    # back in sensor units: every band within the band's BNDS range (the decoder clamps to it),
    # which holds the original range and passes it by at most 2**-8 of the values (hnrfile.BNDS_BITS)
    lo = crop["cube"].min(axis=(0, 1)).astype(np.float64)
    hi = crop["cube"].max(axis=(0, 1)).astype(np.float64)
    slack = 2.0 ** -7 * (np.abs(lo) + hi - lo)
    assert (cube.min(axis=(0, 1)) >= lo - slack).all()
    assert (cube.max(axis=(0, 1)) <= hi + slack).all()


def test_decode_default_output_is_npy(encoded, tmp_path):
    src = tmp_path / "x.hnr"
    shutil.copy(encoded["path"], src)
    assert run("decode", src).exit_code == 0
    assert np.load(tmp_path / "x.npy").shape == (H, W, C)


def test_decode_bands_subset_in_order(encoded, crop, tmp_path):
    full = tmp_path / "full.npy"
    assert run("decode", encoded["path"], "-o", full).exit_code == 0
    for spec, order, with_wavelengths in [("0,5-7,12", [0, 5, 6, 7, 12], True),
                                          ("12,0,7-5", [12, 0, 7, 6, 5], False)]:
        part = tmp_path / f"part{with_wavelengths}.npz"
        result = run("decode", encoded["path"], "-o", part, "--bands", spec)
        assert result.exit_code == 0, result.stderr
        with np.load(part) as z:
            np.testing.assert_array_equal(z["cube"], np.load(full)[..., order])
            if with_wavelengths:  # cube files hold strictly monotonic wavelengths only
                np.testing.assert_allclose(z["wavelength_nm"], crop["wl"][order], rtol=1e-6)
                assert result.stderr == ""
            else:
                assert "wavelength_nm" not in z.files
                assert result.stderr.startswith("hinerc: warning: wavelengths not written")


def test_decode_from_stdin(encoded, tmp_path):
    out = tmp_path / "s.npy"
    result = run("decode", "-", "-o", out, input=encoded["bytes"])
    assert result.exit_code == 0, result.stderr
    assert np.load(out).shape == (H, W, C)


def test_pipeline_encode_stdin_to_stdout(encoded_nowl):
    proc = encoded_nowl["proc"]
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.startswith(b"\x89HNR\r\n\x1a\n") and proc.stderr == b""


def test_pipeline_decode_stdout_into_numpy(encoded_nowl):
    # numpy.load seeks back after reading the magic, which a pipe cannot: read it into memory first
    reader = "import io, numpy, sys; a = numpy.load(io.BytesIO(sys.stdin.buffer.read())); print(a.dtype, a.shape)"
    decoder = subprocess.Popen([HINERC, "decode", str(encoded_nowl["path"]), "-o", "-"], stdout=subprocess.PIPE)
    proc = subprocess.run([sys.executable, "-c", reader], stdin=decoder.stdout, capture_output=True,
                          text=True, timeout=120)
    decoder.stdout.close()
    assert decoder.wait(timeout=120) == 0
    assert proc.stdout.strip() == f"uint16 ({H}, {W}, {C})", proc.stderr


def test_closed_stdout_exits_quietly(encoded):
    """Like `| head -c 0`: the reader is gone before the first write (deterministic, unlike a race)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([HINERC, "decode", str(encoded["path"]), "-o", "-"], stdout=write_end,
                              stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    assert proc.stderr == b"" and proc.returncode == 141


# ---------------------------------------------------------------- overwrite protection

def test_no_overwrite_without_force(encoded, crop, tmp_path):
    out = tmp_path / "taken.hnr"
    out.write_bytes(b"keep")
    assert_one_line_error(run("encode", crop["npy"], "-o", out, *FAST), 6)  # refused before fitting
    assert out.read_bytes() == b"keep"
    dec = tmp_path / "taken.npy"
    dec.write_bytes(b"keep")
    assert_one_line_error(run("decode", encoded["path"], "-o", dec), 6)
    assert dec.read_bytes() == b"keep"
    assert run("decode", encoded["path"], "-o", dec, "-f").exit_code == 0
    assert np.load(dec).shape == (H, W, C)


# ---------------------------------------------------------------- errors: one line, right code

def _bumped_major(data: bytes) -> bytes:
    """HHDR is the first chunk: length at 8, type at 12, major version byte at 16, CRC after the data."""
    n = int.from_bytes(data[8:12], "little")
    b = bytearray(data)
    b[16] += 1
    b[16 + n:20 + n] = zlib.crc32(bytes(b[12:16 + n])).to_bytes(4, "little")
    return bytes(b)


@pytest.mark.parametrize("case", ["missing", "2d", "nan", "ambiguous"])
def test_bad_input_cube_exit_3(case, tmp_path):
    path = tmp_path / "in.npy"
    if case == "2d":
        np.save(path, np.ones((8, 8), np.float32))
    elif case == "nan":
        a = np.ones((8, 8, 4), np.float32)
        a[1, 2, 3] = np.nan
        np.save(path, a)
    elif case == "ambiguous":
        path = tmp_path / "in.npz"
        np.savez(path, a=np.ones((8, 8, 4)), b=np.zeros((8, 8, 4)))
    result = run("encode", path, "-o", tmp_path / "out.hnr", *FAST)
    assert_one_line_error(result, 3)
    assert not (tmp_path / "out.hnr").exists()


@pytest.mark.parametrize("damage, code", [
    (lambda d: d[: len(d) // 2], 4),
    (lambda d: d[: len(d) // 2] + bytes([d[len(d) // 2] ^ 0x10]) + d[len(d) // 2 + 1:], 4),
    (_bumped_major, 5),
])
@pytest.mark.parametrize("command", ["decode", "info"])
def test_damaged_hnr(encoded, tmp_path, damage, code, command):
    bad = tmp_path / "bad.hnr"
    bad.write_bytes(damage(encoded["bytes"]))
    args = ["-o", tmp_path / "out.npy"] if command == "decode" else []
    assert_one_line_error(run(command, bad, *args), code)
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize("args", [
    ["interp", "{enc}", "--nm", "2000", "-o", "{tmp}/o.npy"],
    ["interp", "{nowl}", "--nm", "500", "-o", "{tmp}/o.npy"],
    ["decode", "{enc}", "--bands", f"{C}", "-o", "{tmp}/o.npy"],
    ["decode", "{enc}", "--bands", "0-100", "-o", "{tmp}/o.npy"],
])
def test_request_outside_the_file_exit_7(encoded, encoded_nowl, tmp_path, args):
    paths = {"enc": encoded["path"], "nowl": encoded_nowl["path"], "tmp": tmp_path}
    assert_one_line_error(run(*[a.format(**paths) for a in args]), 7)
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("args", [
    ["encode", "x.npy", "--bits", "12"],
    ["encode", "x.npy", "--effort", "0"],
    ["encode", "x.npy", "--bpppb", "0"],
    ["encode", "x.npy", "--bpppb", "-1"],
    ["encode", "x.npy", "--bpppb", "nan"],  # click.FloatRange lets nan through; the option type does not
    ["encode", "x.npy", "--bpppb", "inf"],
    ["encode", "x.npy", "--tile", "5"],
    ["encode", "x.npy", "--device", "gpu"],
    ["encode", "x.npy", "--model", "nope"],
    ["encode", "x.npy", "--wavelengths", "400:10:405"],  # a malformed range
    ["interp", "x.hnr", "--lambda", "1.5"],  # outside [0, 1] for every file
    ["interp", "x.hnr", "--lambda", "nan"],
    ["interp", "x.hnr", "--nm", "inf"],
    ["demo", "-o", "somewhere"],  # demo's directory is -O/--output-dir, like encode's
    ["demo", "--bpppb", "nan"],
    ["encode", "-"],  # stdin needs -o
    ["decode", "x.hnr", "--bands", "1,a"],
    ["decode", "x.hnr", "-o", "x.txt"],  # unknown output format, refused before decoding
    ["interp", "x.hnr"],  # neither --lambda nor --nm
    ["interp", "x.hnr", "--lambda", "0.5", "--nm", "500"],
    ["interp", "x.hnr", "--lambda", "0.5", "-o", "one.mat"],  # one band (H x W) is .npy only
    ["info"],
    ["frobnicate"],
])
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "Error:" in result.stderr and result.stdout == ""


def test_internal_error_is_one_line(encoded, monkeypatch):
    def broken(data):
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(api, "info", broken)
    result = run("info", encoded["path"])
    assert_one_line_error(result, 1)
    assert "internal error: ValueError: boom second line" in result.stderr and "HINERC_DEBUG" in result.stderr


def test_debug_shows_traceback(encoded, monkeypatch):
    monkeypatch.setattr(api, "info", lambda data: 1 / 0)
    monkeypatch.setenv("HINERC_DEBUG", "1")
    result = run("info", encoded["path"])
    assert result.exit_code == 1 and "Traceback" in result.stderr


def test_interrupt_leaves_no_output(crop, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "encode_reader", interrupted)  # the temporary output exists by then
    result = run("encode", crop["npy"], "-o", tmp_path / "o.hnr", *FAST)
    assert result.exit_code == 130 and result.stderr.strip() == "hinerc: interrupted"
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- interp, info, eval

def test_interp_shapes_and_wavelengths(encoded, crop, tmp_path):
    one = tmp_path / "one.npy"
    assert run("interp", encoded["path"], "--nm", f"{crop['wl'][10]}", "-o", one).exit_code == 0
    band = np.load(one)
    assert band.shape == (H, W) and band.dtype == np.uint16
    two = tmp_path / "two.npz"
    result = run("interp", encoded["path"], "--lambda", "0.25,0.75", "-o", two)
    assert result.exit_code == 0, result.stderr
    with np.load(two) as z:
        assert z["cube"].shape == (H, W, 2)
        lo, hi = crop["wl"][0], crop["wl"][-1]
        np.testing.assert_allclose(z["wavelength_nm"], [lo + 0.25 * (hi - lo), lo + 0.75 * (hi - lo)])


def test_interp_at_a_coded_band_matches_decode(encoded, crop, tmp_path):
    assert run("interp", encoded["path"], "--lambda", "0", "--lambda", "1", "-o", tmp_path / "i.npy").exit_code == 0
    assert run("decode", encoded["path"], "--bands", f"0,{C - 1}", "-o", tmp_path / "d.npy").exit_code == 0
    np.testing.assert_allclose(np.load(tmp_path / "i.npy").astype(float), np.load(tmp_path / "d.npy"), atol=1)


def test_info_json_and_text(encoded):
    result = run("info", encoded["path"], "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert json.dumps(summary)  # plain JSON types only
    text = run("info", encoded["path"])
    assert text.exit_code == 0 and text.stdout.strip() and text.stderr == ""
    assert "32" in text.stdout and "48" in text.stdout


def test_eval_prints_metrics(encoded, crop):
    result = run("eval", crop["npz"], encoded["path"])
    assert result.exit_code == 0, result.stderr
    for word in ("bpppb", "PSNR_band", "PSNR_global", "SAM"):
        assert word in result.stdout
    metrics = json.loads(run("eval", crop["npz"], encoded["path"], "--json").stdout)
    assert metrics["psnr_band"] == pytest.approx(encoded["summary"]["psnr_band"], abs=0.01)


def test_eval_shape_mismatch_exit_3(encoded, crop, tmp_path):
    other = tmp_path / "other.npy"
    np.save(other, crop["cube"][:16])
    assert_one_line_error(run("eval", other, encoded["path"]), 3)


# ---------------------------------------------------------------- progress

def test_progress_log_mode_prints_about_every_tenth():
    stream = io.StringIO()
    printer = ProgressPrinter(stream, tty=False)
    for i in range(1, 201):
        printer(api.Progress("fit", i, 200, loss=0.01, psnr=30.0))
    lines = stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 11 and lines[-1].startswith("fit: epoch 200/200")
    assert "loss 0.01" in lines[-1] and "PSNR 30.00 dB" in lines[-1]


def test_progress_terminal_mode_redraws_one_line():
    stream = io.StringIO()
    printer = ProgressPrinter(stream, tty=True)
    for i in range(1, 51):
        printer(api.Progress("fit", i, 50))
    printer.close()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.count("\r") == 50 and "epoch 50/50" in text
