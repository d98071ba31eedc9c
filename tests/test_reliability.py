"""Nothing lost, ever (issue 14): every write checked, bad outputs refused before any work, one
exit-code rule, and nothing partial or temporary left behind.

Writes go to /dev/full, to a real full file system (a 64 KiB tmpfs mounted by the test) and to a
read-only one (a tmpfs remounted read-only: chmod does not stop root); the tmpfs tests skip, with
the reason, where mounting is not allowed. Scenes are a 32 x 32 x 16 crop of the packaged sample,
encoded with --effort 1, so the whole file runs in about half a minute on two cores.
"""
from __future__ import annotations

import errno
import json
import os
import re
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
from hinercodec.errors import EXIT_CODES, OutputError, OutputExistsError
from hinercodec.formats import cubeio

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "hinercodec" / "data" / "sample_houston.npz"
FAST = ["--effort", "1", "--bpppb", "1", "--device", "cpu", "-q"]
H, W, C = 32, 32, 16


def run(*args, input: bytes | None = None):
    return CliRunner().invoke(cli.main, [str(a) for a in args], input=input, catch_exceptions=False)


def run_proc(*args, stdout, cwd: Path) -> subprocess.CompletedProcess:
    """The real command in a child process, its stdout on `stdout` (an open file or a descriptor)."""
    return subprocess.run([sys.executable, "-m", "hinercodec.cli.main", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, cwd=cwd, timeout=300)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hinerc: "), stderr
    assert "Traceback" not in stderr and "HDF5" not in stderr and ".tmp" not in stderr
    return lines[0]


def assert_exit(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stderr)
    return one_line(result.stderr)


def leftovers(directory: Path) -> list[str]:
    """Temporary files of ours (cubeio's `.NAME.<hex>.tmp`, demo/archive probes) left in `directory`."""
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> dict:
    """A 32 x 32 x 16 uint16 crop of the packaged sample (with wavelengths), and its .hnr."""
    d = tmp_path_factory.mktemp("scene")
    with np.load(SAMPLE) as z:
        cube = np.ascontiguousarray(z["cube"][:H, :W, :C])
        wl = z["wavelength_nm"][:C].astype(np.float64)
    np.savez(d / "crop.npz", cube=cube, wavelength_nm=wl)
    result = run("encode", d / "crop.npz", "-o", d / "crop.hnr", *FAST)
    assert result.exit_code == 0, result.stderr
    return {"dir": d, "npz": d / "crop.npz", "hnr": d / "crop.hnr", "cube": cube, "wl": wl}


def _mount_tmpfs(path: Path, read_only: bool = False) -> Path:
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount/umount command here")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0777", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here: {proc.stderr.strip() or proc.returncode}")
    if read_only:
        proc = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
            pytest.skip(f"remounting a tmpfs read-only is not allowed here: {proc.stderr.strip()}")
    return path


@pytest.fixture
def full_fs(tmp_path):
    """A real full file system: a 64 KiB tmpfs filled up by a filler file."""
    path = _mount_tmpfs(tmp_path / "full")
    try:
        fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while os.write(fd, bytes(4096)):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def ro_fs(tmp_path):
    """A read-only file system (root ignores chmod 0o555, not a read-only mount)."""
    path = _mount_tmpfs(tmp_path / "ro", read_only=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def no_reads(monkeypatch) -> list:
    """Record any read of a cube or a .hnr (the reads are refused): a bad output must be found first."""
    reads: list = []

    def refuse(name):
        def reader(*args, **kwargs):
            reads.append((name, args))
            raise AssertionError(f"{name} called: the input was read before the output was checked")
        return reader

    for name in ("open_cube", "read_cube", "read_input_bytes"):
        monkeypatch.setattr(cubeio, name, refuse(name))
    monkeypatch.setattr(api, "Decoder", refuse("Decoder"))
    return reads


@pytest.fixture
def quick_encode(scene, monkeypatch) -> None:
    """The encoder gives the scene's .hnr at once (the cube is still read): for tests whose subject is
    the write of the file, not the fit (a real encode takes seconds on two cores)."""
    data = scene["hnr"].read_bytes()

    def encode_reader(reader, options=None, progress=None, map_fn=map, **keywords):
        reader.read(0, 1, 0, 1)
        return api.EncodeResult(data=data, bpppb=8 * len(data) / (H * W * C), psnr_band=40.0, seconds=0.0,
                                device="cpu")

    monkeypatch.setattr(api, "encode_reader", encode_reader)


# ---------------------------------------------------------------------------------------- /dev/full


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
@pytest.mark.parametrize("command", ["encode", "decode", "interp", "info"])
def test_stdout_on_dev_full_exits_9(scene, tmp_path, command):
    args = {"encode": ["encode", scene["npz"], "-o", "-", *FAST],
            "decode": ["decode", scene["hnr"], "-o", "-"],
            "interp": ["interp", scene["hnr"], "--lambda", "0.5", "-o", "-"],
            "info": ["info", scene["hnr"], "--json"]}[command]
    with open("/dev/full", "wb") as full:
        proc = run_proc(*args, stdout=full, cwd=tmp_path)
    assert proc.returncode == 9, proc.stderr
    assert one_line(proc.stderr) == "hinerc: error: writing to stdout failed: No space left on device"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
@pytest.mark.parametrize("args", [["encode", "{npz}", *FAST], ["decode", "{hnr}"], ["decode", "{hnr}", "-f"],
                                  ["interp", "{hnr}", "--lambda", "0.5"]])
def test_output_file_dev_full_exits_9(scene, quick_encode, args):
    """-o /dev/full: a device is written in place (nothing replaced, no -f needed; a cube as .npy)."""
    result = run(*[a.format(**scene) for a in args], "-o", "/dev/full")
    assert assert_exit(result, 9) == "hinerc: error: cannot write /dev/full: No space left on device"
    assert os.path.exists("/dev/full") and not os.path.isfile("/dev/full")
    assert not [n for n in os.listdir("/dev") if n.startswith(".full.")]


def test_output_device_dev_null_is_written(scene):
    assert run("decode", scene["hnr"], "-o", "/dev/null").exit_code == 0
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


# ---------------------------------------------------------------------------------------- full file system


def test_encode_to_full_file_system(scene, full_fs, quick_encode):
    result = run("encode", scene["npz"], "-o", full_fs / "x.hnr", *FAST)
    assert assert_exit(result, 9) == f"hinerc: error: cannot write {full_fs / 'x.hnr'}: No space left on device"
    assert sorted(os.listdir(full_fs)) == ["filler"]


@pytest.mark.parametrize("ext", [".npy", ".h5", ".mat", ".npz"])
def test_decode_to_full_file_system(scene, full_fs, ext, tmp_path):
    out = full_fs / f"x{ext}"
    if ext == ".h5":  # in a child process: HDF5 prints its error stack to the real stderr, if at all
        proc = run_proc("decode", scene["hnr"], "-o", out, stdout=subprocess.DEVNULL, cwd=tmp_path)
        code, stderr = proc.returncode, proc.stderr
    else:
        result = run("decode", scene["hnr"], "-o", out)
        code, stderr = result.exit_code, result.stderr
    assert code == 9, stderr
    assert one_line(stderr) == f"hinerc: error: cannot write {out}: No space left on device"
    assert sorted(os.listdir(full_fs)) == ["filler"]


def test_tiled_decode_to_full_file_system(scene, full_fs, tmp_path):
    """A tiled file goes to .npy a row of tiles at a time, each row written in a thread while the
    next is decoded: a failed write still ends the decode with one line, and leaves nothing."""
    tiled = tmp_path / "tiled.hnr"
    assert run("encode", scene["npz"], "-o", tiled, "--tile", "16", *FAST).exit_code == 0
    out = full_fs / "x.npy"
    result = run("decode", tiled, "-o", out)
    assert assert_exit(result, 9) == f"hinerc: error: cannot write {out}: No space left on device"
    assert sorted(os.listdir(full_fs)) == ["filler"]


def test_decode_stdout_redirected_to_full_file_system(scene, full_fs, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    with open(full_fs / "out", "wb") as stdout:
        proc = run_proc("decode", scene["hnr"], "-o", "-", stdout=stdout, cwd=cwd)
    assert proc.returncode == 9, proc.stderr
    assert one_line(proc.stderr) == "hinerc: error: writing to stdout failed: No space left on device"
    # what the shell opened is the shell's; hinerc leaves nothing of its own
    assert sorted(os.listdir(full_fs)) == ["filler", "out"] and os.listdir(cwd) == []


def test_encode_stdout_on_full_file_system(scene, full_fs, quick_encode, monkeypatch):
    """The same for encode, in this process (an encode in a child process costs seconds): its stdout
    is a file on the full tmpfs."""
    with open(full_fs / "out", "wb", buffering=0) as stdout:
        monkeypatch.setattr(cli, "_stdout", lambda: stdout)
        result = run("encode", scene["npz"], "-o", "-", *FAST)
        assert assert_exit(result, 9) == "hinerc: error: writing to stdout failed: No space left on device"
    assert sorted(os.listdir(full_fs)) == ["filler", "out"]


def test_archive_run_on_full_file_system(scene, full_fs, quick_encode):
    """A scene that cannot be written is a failed scene (exit 8), recorded in the manifest elsewhere."""
    manifest = scene["dir"] / "full_manifest.jsonl"
    result = run("encode", scene["npz"], "-O", full_fs, "--workers", "0", "--manifest", manifest, *FAST)
    assert result.exit_code == 8, result.stderr
    assert "No space left on device" in result.stderr and ".tmp" not in result.stderr
    assert sorted(os.listdir(full_fs)) == ["filler"]
    record = json.loads(manifest.read_text().splitlines()[-1])
    assert record["status"] == "failed" and "No space left on device" in record["error"]


# ---------------------------------------------------------------------------------------- early refusal


@pytest.mark.parametrize("command", ["encode", "decode", "interp"])
@pytest.mark.parametrize("where", ["missing", "directory", "directory-force", "read-only", "exists"])
def test_bad_output_refused_before_any_read(scene, tmp_path, no_reads, request, command, where):
    if where == "read-only":
        out = request.getfixturevalue("ro_fs") / "x.npy"
    elif where == "missing":
        out = tmp_path / "no" / "such" / "dir" / "x.npy"
    elif where.startswith("directory"):
        out = tmp_path / "adir.npy"
        out.mkdir()
    else:
        out = tmp_path / "taken.npy"
        out.write_bytes(b"keep")
    force = ["-f"] if where == "directory-force" else []
    args = {"encode": ["encode", scene["npz"], *FAST], "decode": ["decode", scene["hnr"]],
            "interp": ["interp", scene["hnr"], "--lambda", "0.5"]}[command]
    result = run(*args, "-o", out, *force)
    line = assert_exit(result, 6 if where == "exists" else 9)
    assert no_reads == []
    expected = {"missing": "does not exist", "directory": "is a directory", "directory-force": "is a directory",
                "read-only": "Read-only file system", "exists": "use -f/--force"}[where]
    assert expected in line and str(out) in line
    assert leftovers(out.parent if out.parent.exists() else tmp_path) == []
    if where == "exists":
        assert out.read_bytes() == b"keep"


def test_archive_output_dir_refused_before_any_read(scene, ro_fs, tmp_path, no_reads):
    for out_dir in (ro_fs, ro_fs / "sub"):
        result = run("encode", scene["npz"], scene["dir"] / "other.npy", "-O", out_dir, "--workers", "0", *FAST)
        assert "Read-only file system" in assert_exit(result, 9)
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    assert "cannot create the output directory" in assert_exit(run("encode", scene["npz"], "-O", blocker / "d"), 9)
    assert no_reads == [] and os.listdir(ro_fs) == []


def test_demo_output_dir_refused_at_once(ro_fs, monkeypatch):
    from hinercodec import demo

    monkeypatch.setattr(demo, "run", lambda *a, **k: pytest.fail("the demo ran before its -O was checked"))
    assert "Read-only file system" in assert_exit(run("demo", "-O", ro_fs / "d"), 9)


def test_interrupt_removes_the_claimed_output(scene, tmp_path, monkeypatch):
    """Ctrl-C after the output was claimed (its temporary file exists) leaves nothing."""
    seen = []

    def interrupted(*args, **kwargs):
        seen.append(sorted(os.listdir(tmp_path)))
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "encode_reader", interrupted)
    result = run("encode", scene["npz"], "-o", tmp_path / "x.hnr", *FAST)
    assert result.exit_code == 130 and result.stderr.strip() == "hinerc: interrupted"
    assert len(seen) == 1 and len(seen[0]) == 1 and seen[0][0].startswith(".x.hnr.")  # the claim, made first
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------- the writers


class _Trickle:
    """A stream that takes at most 3 bytes per write (a raw pipe may write less than it was given)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b) -> int:
        chunk = bytes(b[:3])
        self.data += chunk
        return len(chunk)

    def flush(self) -> None:
        pass


def test_short_writes_are_continued_and_no_progress_fails():
    stream = _Trickle()
    cubeio.write_stream(stream, b"0123456789")
    assert bytes(stream.data) == b"0123456789"

    class Stuck(_Trickle):
        def write(self, b) -> int:
            return 0

    with pytest.raises(OutputError, match="writing to stdout failed"):
        cubeio.write_stream(Stuck(), b"abc")


def test_h5py_error_text_becomes_one_line(tmp_path):
    tmp = tmp_path / ".x.h5.0123456789ab.tmp"
    dump = (f"Can't decrement id ref count (file write failed: time = Thu Jan  1 00:00:00 2025\n, "
            f"filename = '{tmp}', file descriptor = 3, errno = 28, error message = 'No space left on device', "
            "buf = 0x55, total write size = 4096, bytes this sub-write = 4096, bytes actually written = "
            "18446744073709551615, offset = 0)")
    assert cubeio._write_reason(RuntimeError(dump), tmp) == "No space left on device"
    assert cubeio._write_reason(OSError(28, "Unable to synchronously create dataset (long text)")) == \
        "No space left on device"
    assert str(tmp) not in cubeio._write_reason(RuntimeError(f"cannot flush {tmp}\nmore"), tmp)


def test_claim_output_cleans_up_and_refuses(tmp_path):
    with cubeio.claim_output(tmp_path / "a.hnr") as target:
        assert [p.name for p in tmp_path.iterdir()] == [target.tmp.name]
    assert os.listdir(tmp_path) == []
    with cubeio.claim_output(tmp_path / "a.hnr") as target:
        cubeio.atomic_write_bytes(tmp_path / "a.hnr", b"hnr", target=target)
    assert os.listdir(tmp_path) == ["a.hnr"]
    with pytest.raises(OutputExistsError):
        cubeio.claim_output(tmp_path / "a.hnr").__enter__()
    with pytest.raises(OutputError, match="does not exist"):
        cubeio.claim_output(tmp_path / "missing" / "a.hnr").__enter__()
    assert os.listdir(tmp_path) == ["a.hnr"]


# ---------------------------------------------------------------------------------------- exit codes


def _bumped_major(data: bytes) -> bytes:
    """HHDR is the first chunk: length at 8, type at 12, major version byte at 16, CRC after the data."""
    n = int.from_bytes(data[8:12], "little")
    b = bytearray(data)
    b[16] += 1
    b[16 + n:20 + n] = zlib.crc32(bytes(b[12:16 + n])).to_bytes(4, "little")
    return bytes(b)


def test_every_exit_code_from_a_real_command(scene, tmp_path, monkeypatch):
    hnr = scene["hnr"].read_bytes()
    (tmp_path / "cut.hnr").write_bytes(hnr[: len(hnr) // 2])
    (tmp_path / "newer.hnr").write_bytes(_bumped_major(hnr))
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY truncated")
    (tmp_path / "taken.npy").write_bytes(b"keep")
    codes = {
        0: run("info", scene["hnr"]),
        2: run("encode", scene["npz"], "--bpppb", "nan"),
        3: run("encode", tmp_path / "missing.npy", "-o", tmp_path / "m.hnr"),
        4: run("decode", tmp_path / "cut.hnr", "-o", tmp_path / "cut.npy"),
        5: run("info", tmp_path / "newer.hnr"),
        6: run("decode", scene["hnr"], "-o", tmp_path / "taken.npy"),
        7: run("decode", scene["hnr"], "--bands", "0-99", "-o", tmp_path / "b.npy"),
        8: run("encode", scene["npz"], tmp_path / "bad.npy", "-O", tmp_path / "arch", "--workers", "0", *FAST),
        9: run("decode", scene["hnr"], "-o", tmp_path / "nodir" / "x.npy"),
    }
    for code, result in codes.items():
        assert result.exit_code == code, (code, result.exit_code, result.stderr)
        if code not in (0, 2, 8):
            one_line(result.stderr)
    assert "Error: Invalid value for '--bpppb'" in codes[2].stderr
    monkeypatch.setattr(api, "info", lambda data: 1 / 0)
    assert "internal error: ZeroDivisionError" in assert_exit(run("info", scene["hnr"]), 1)
    monkeypatch.setattr(api, "info", lambda data: (_ for _ in ()).throw(KeyboardInterrupt))
    assert assert_exit(run("info", scene["hnr"]), 130) == "hinerc: interrupted"
    read_end, write_end = os.pipe()  # 141: the reader is gone before the first write
    os.close(read_end)
    try:
        proc = run_proc("decode", scene["hnr"], "-o", "-", stdout=write_end, cwd=tmp_path)
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == ""
    assert set(codes) | {1, 130, 141} == set(EXIT_CODES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch", "bad.npy", "cut.hnr", "newer.hnr", "taken.npy"]


def test_exit_codes_listed_in_help_and_readme():
    text = run("--help").stdout
    listed = {int(m) for m in re.findall(r"^\s+(\d+)\s{2,}\S", text, flags=re.M)}
    assert listed == set(EXIT_CODES), text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    assert {int(m) for m in re.findall(r"^\| (\d+) \|", section, flags=re.M)} == set(EXIT_CODES)
