"""The rate-distortion harness on small crops of real scenes: every codec gives a point (or says
why it cannot), rates are recomputed from the files on disk, and the decoded cubes are measured."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))  # `benchmarks` is a folder of scripts, not an installed package

from benchmarks.codecs import CODEC_NAMES, Job, make_codec  # noqa: E402
from benchmarks.codecs.base import pack, unpack  # noqa: E402

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not found")


def _crop(name: str, h: int, w: int, c: int):
    from hinercodec.formats.cubeio import read_cube

    cube = read_cube(DATA / name)
    return np.ascontiguousarray(cube.data[:h, 20:20 + w, :c]), cube.wavelengths[:c]


@pytest.mark.slow
def test_rd_tiny_houston_all_codecs(tmp_path):
    cube, _ = _crop("houston2018_crop.mat", 32, 32, 32)
    path = tmp_path / "houston_crop.npy"
    np.save(path, cube)
    out = tmp_path / "rd.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "rd.py"), str(path), "--rates", "1.0",
         "--hinerc-args", "--effort 1", "--json", str(out), "--workdir", str(tmp_path / "work"),
         "--plot", str(tmp_path / "plots")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["machine"]["cpu"] and report["machine"]["cores"] >= 1
    unavailable = {u["codec"]: u["reason"] for u in report["unavailable"]}
    for codec, reason in unavailable.items():
        print(f"{codec}: unavailable: {reason}")
    points = {p["codec"]: p for p in report["points"]}
    for codec in CODEC_NAMES:
        assert (codec in points) != (codec in unavailable), codec
        if codec in unavailable:
            continue
        p = points[codec]
        assert "error" not in p, p["error"]
        size = os.path.getsize(p["file"])
        assert p["n_bytes"] == size
        assert p["bpppb"] == pytest.approx(8 * size / cube.size, rel=1e-12)
        assert p["met"] == (0.9 <= p["bpppb"] <= 1.0)
        assert math.isfinite(p["psnr_band"]) and math.isfinite(p["psnr_global"]) and math.isfinite(p["sam_deg"])
        assert p["dtype_restored"]
        assert p["encode_s"] > 0 and p["decode_s"] > 0
    assert (tmp_path / "plots" / "houston_crop.png").stat().st_size > 0
    assert "houston_crop.npy" in proc.stdout  # the table


@pytest.mark.parametrize("name", ["jpeg2000", "pca-jpeg2000", "pca-x265", "x265"])
def test_classical_float_cube_round_trip(tmp_path, name):
    """Float cubes go through the per-band normalisation path and come back as float32."""
    codec = make_codec(name)
    reason = codec.unavailable()
    if reason:
        pytest.skip(f"{name} unavailable: {reason}")
    cube, _ = _crop("samson.mat", 40, 40, 24)
    job = Job(cube, tmp_path / "samson.npy", tmp_path)
    settings = codec.search(job, 1.5)
    out = tmp_path / "x.bin"
    codec.encode(job, settings, out)
    decoded = codec.decode(out, tmp_path)
    from hinercodec.metrics import bpppb, distortion

    assert decoded.dtype == np.float32 and decoded.shape == cube.shape
    assert bpppb(out.stat().st_size, cube.shape) <= 1.5
    assert distortion(cube, decoded).psnr_band > 25


def test_pack_round_trip_and_truncation():
    parts = [b"meta", b"", bytes(70000), b"xyz"]
    assert unpack(pack(parts)) == parts
    from benchmarks.codecs import CodecError

    with pytest.raises(CodecError):
        unpack(pack(parts)[:-1])


def test_interp_script(tmp_path):
    from hinercodec.formats.cubeio import write_cube

    cube, wl = _crop("houston2018_crop.mat", 48, 48, 48)
    path = tmp_path / "houston_crop.npz"
    write_cube(path, cube, wl)
    out = tmp_path / "interp.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "interp.py"), str(path), "--bpppb", "0.4",
         "--hinerc-args", "--effort 1", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert r["kept_bands"] == 24 and r["dropped_bands_scored"] == 23 and r["wavelengths"] == "nm"
    for key in ("hinerc_interp_psnr_band", "linear_decoded_psnr_band", "linear_original_psnr_band"):
        assert math.isfinite(r[key])
    assert "hinerc interp" in proc.stdout and "linear between decoded" in proc.stdout


def test_rd_compare_reads_rd_and_speed_results(tmp_path):
    from benchmarks.rd_compare import points, table

    rd = {"points": [{"cube": "a.mat", "codec": "hinerc", "target_bpppb": 0.2, "bpppb": 0.199, "psnr_band": 40.0},
                     {"cube": "a.mat", "codec": "pca-x265", "target_bpppb": 0.2, "bpppb": 0.2, "psnr_band": 39.0}]}
    speed = {"rows": [{"cube": "a.mat", "rate": 0.2, "hinerc": {"bpppb": 0.198, "psnr_band": 40.25}},
                      {"cube": "b.mat", "rate": 0.2, "hinerc": {"error": "failed"}}]}
    (tmp_path / "rd.json").write_text(json.dumps(rd))
    (tmp_path / "speed.json").write_text(json.dumps(speed))
    old, new = points(tmp_path / "rd.json", "hinerc"), points(tmp_path / "speed.json", "hinerc")
    assert old == {("a.mat", 0.2): (0.199, 40.0)} and new == {("a.mat", 0.2): (0.198, 40.25)}
    lines = table([("old", old), ("new", new)])
    assert lines[-1] == "| a.mat | 0.2 | 0.1990 / 40.00 | 0.1980 / 40.25 | +0.25 |"
