"""Archive runs (hinercodec.archive, cli/_archive.py) on real crops of the Houston 2018 scene.

Scenes are 32 x 32 x 16 crops fitted for a few epochs (about a second each), so the file runs in
about a minute on two cores, Dask cluster start-ups included. The fault test SIGKILLs a worker
process in the middle of a run and checks that every scene is still written, exactly once.
"""
from __future__ import annotations

import functools
import json
import operator
import os
import signal
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hinercodec import archive
from hinercodec.api import EncodeOptions
from hinercodec.cli import _archive as cli_archive
from hinercodec.errors import UsageError
from hinercodec.formats.hnrfile import unpack

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OPTIONS = EncodeOptions(bpppb=2.0, model="latent", epochs=5, device="cpu")  # a rate a 32 x 32 x 16 crop can fill
FIELDS = {"input", "output", "status", "shape", "bytes", "bpppb", "psnr_band", "seconds", "device", "worker"}


def _crops(directory: Path, count: int) -> list[str]:
    """`count` distinct 32 x 32 x 16 uint16 crops, alternately .npy and .mat (variable 'cube')."""
    if not DATA.is_dir():
        pytest.skip("../shared/data not found")
    from scipy.io import loadmat, savemat

    cube = loadmat(DATA / "houston2018_crop.mat")["houston"]
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        crop = np.ascontiguousarray(cube[(i % 3) * 32:(i % 3) * 32 + 32, (i // 3) * 32:(i // 3) * 32 + 32, i:i + 16])
        path = directory / f"scene{i}{'.npy' if i % 2 == 0 else '.mat'}"
        if path.suffix == ".npy":
            np.save(path, crop)
        else:
            savemat(path, {"cube": crop})
        paths.append(str(path))
    return paths


def _bad_scene(directory: Path) -> str:
    path = directory / "broken.npy"
    path.write_bytes(b"\x93NUMPY truncated")
    return str(path)


def _stamps(paths) -> dict:
    return {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in paths}


def _dask():
    return pytest.importorskip("distributed", reason="dask[distributed] is not installed (pip install hinerc[cluster])")


# --------------------------------------------------------------------------------------------- planning


def test_plan_names_outputs_and_refuses_clashes(tmp_path):
    tasks = archive.plan(["a/x.mat", "b/y.h5", "a/x.mat"], str(tmp_path / "out"))
    assert tasks == [archive.Task("a/x.mat", str(tmp_path / "out" / "x.hnr")),
                     archive.Task("b/y.h5", str(tmp_path / "out" / "y.hnr"))]  # the repeated path once
    assert archive.plan(["a/x.mat"])[0].output == str(Path("a") / "x.hnr")  # beside the input
    with pytest.raises(UsageError, match="would both be encoded to"):
        archive.plan(["a/x.mat", "b/x.npy"], str(tmp_path / "out"))
    with pytest.raises(UsageError, match="stdin"):
        archive.plan(["a.mat", "-"], None)
    with pytest.raises(UsageError, match="overwrite the input"):
        archive.plan([str(tmp_path / "x.hnr")], str(tmp_path))
    assert not (tmp_path / "out").exists()  # refused before any work


def test_file_list(tmp_path, monkeypatch):
    listing = tmp_path / "scenes.txt"
    listing.write_text("# night flights\n a.mat \n\nsub/b.h5\n")
    assert cli_archive.read_file_list(str(listing)) == ["a.mat", "sub/b.h5"]
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("c.npy\n"))
    assert cli_archive.read_file_list("-") == ["c.npy"]
    with pytest.raises(Exception, match="cannot read the file list"):
        cli_archive.read_file_list(str(tmp_path / "missing.txt"))


def test_worker_specs_one_task_per_gpu():
    _dask()
    gpu = archive.worker_specs(4, ["2", "3"])
    assert sorted(gpu) == ["gpu2", "gpu3"]
    assert gpu["gpu3"]["options"]["resources"] == {"GPU": 1}
    assert gpu["gpu3"]["options"]["env"] == {"CUDA_VISIBLE_DEVICES": "3"}
    assert gpu["gpu2"]["options"]["nthreads"] == 1
    cpu = archive.worker_specs(3, [])
    assert len(cpu) == 3 and all("resources" not in s["options"] for s in cpu.values())


# --------------------------------------------------------------------------------------------- serial


def test_serial_run_failure_manifest_resume(tmp_path, capsys):
    scenes = _crops(tmp_path / "in", 3)
    bad = _bad_scene(tmp_path / "in")
    out = tmp_path / "out"
    listing = tmp_path / "list.txt"
    listing.write_text(f"{scenes[2]}\n{bad}\n")
    code = cli_archive.encode_many(scenes[:2], str(out), str(listing), OPTIONS, workers=0, scheduler=None,
                                   manifest=None, force=False, quiet=False, key=None, wavelengths=None)
    assert code == cli_archive.EXIT_SOME_FAILED
    err = capsys.readouterr().err
    assert err.count("] ok ") == 3 and err.count("] failed ") == 1 and "Traceback" not in err
    assert "4 scenes: 3 encoded, 0 skipped (valid output exists), 1 failed" in err.splitlines()[-1]

    records = archive.read_manifest(str(out / "manifest.jsonl"))
    assert [r["input"] for r in records] == scenes + [bad]  # serial: in the given order
    for r in records:
        assert FIELDS <= set(r) and r["worker"] == "local"
    failed = records[-1]
    assert failed["status"] == "failed" and "broken.npy" in failed["error"] and "\n" not in failed["error"]
    assert not (out / "broken.hnr").exists()
    for r in records[:3]:
        assert r["status"] == "ok" and r["shape"] == [32, 32, 16] and r["device"] == "cpu"
        data = Path(r["output"]).read_bytes()
        f = unpack(data)
        assert (f.height, f.width, f.bands) == (32, 32, 16) and len(data) == r["bytes"]
        assert 0.9 * OPTIONS.bpppb <= r["bpppb"] <= OPTIONS.bpppb and r["psnr_band"] > 15

    # resume: valid outputs are skipped and left untouched; the bad scene fails again
    outputs = [r["output"] for r in records[:3]]
    before = _stamps(outputs)
    code = cli_archive.encode_many(scenes, str(out), None, OPTIONS, workers=0, scheduler=None, manifest=None,
                                   force=False, quiet=True, key=None, wavelengths=None)
    assert code == 0 and capsys.readouterr().err == ""  # quiet, and nothing failed
    assert _stamps(outputs) == before
    rerun = archive.read_manifest(str(out / "manifest.jsonl"))[4:]  # runs append
    assert [r["status"] for r in rerun] == ["skipped"] * 3
    assert [r["bytes"] for r in rerun] == [r["bytes"] for r in records[:3]]

    # a damaged output (flipped byte) fails its checksum: encoded again, the others still skipped
    damaged = Path(outputs[1])
    raw = bytearray(damaged.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    summary = archive.run(archive.plan(scenes, str(out)), OPTIONS, workers=0)
    status = {r["output"]: r for r in summary.records}
    assert status[str(damaged)]["status"] == "ok" and status[str(damaged)]["note"] == "replaced a damaged output"
    unpack(damaged.read_bytes())
    assert [status[o]["status"] for o in (outputs[0], outputs[2])] == ["skipped", "skipped"]
    assert not list(out.glob(".*.tmp"))


def test_manifest_cut_after_a_killed_run(tmp_path):
    scene = _crops(tmp_path / "in", 1)
    out = tmp_path / "out"
    first = archive.run(archive.plan(scene, str(out)), OPTIONS, workers=0)
    assert first.count("ok") == 1
    manifest = out / "m.jsonl"
    manifest.write_text('{"status": "ok"}\n{"input": "half a li')  # what a kill mid-write leaves
    summary = archive.run(archive.plan(scene, str(out)), OPTIONS, manifest=str(manifest))
    assert summary.count("skipped") == 1
    lines = manifest.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["status"] == "skipped"


def test_without_dask_workers_and_scheduler_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "_dask_available", lambda: False)
    tasks = archive.plan([str(tmp_path / "a.npy")], str(tmp_path / "out"))
    with pytest.raises(UsageError, match="needs Dask"):
        archive.run(tasks, OPTIONS, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(UsageError, match="--workers needs Dask"):
        archive.run(tasks, OPTIONS, workers=2)
    with pytest.raises(UsageError, match="cannot be combined"):
        archive.run(tasks, OPTIONS, workers=2, scheduler="tcp://127.0.0.1:1")


# --------------------------------------------------------------------------------------------- Dask


def test_dask_map_runs_items_as_tasks():
    _dask()
    from distributed import Client, LocalCluster

    assert archive.dask_map(operator.neg, range(3)) == [0, -1, -2]  # outside a worker: builtin map
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        scene = client.submit(functools.partial(archive.dask_map, operator.neg), [1, 2, 3, 4])
        assert scene.result(timeout=60) == [-1, -2, -3, -4]
        # the items ran as tasks of their own (keys 'neg-...'), not inside the scene task
        assert "neg" in client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))


@pytest.mark.slow
def test_local_cluster_run_matches_serial(tmp_path):
    _dask()
    scenes = _crops(tmp_path / "in", 3) + [_bad_scene(tmp_path / "in")]
    summary = archive.run(archive.plan(scenes, str(tmp_path / "out")), OPTIONS, workers=2,
                          manifest=str(tmp_path / "out" / "manifest.jsonl"))
    by_input = {r["input"]: r for r in summary.records}
    assert [by_input[s]["status"] for s in scenes] == ["ok", "ok", "ok", "failed"]
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in summary.records)
    assert len({r["worker"] for r in summary.records}) <= 2
    for s in scenes[:3]:
        r = by_input[s]
        f = unpack(Path(r["output"]).read_bytes())
        assert [f.height, f.width, f.bands] == r["shape"] == [32, 32, 16] and r["device"] == "cpu"
    assert len(archive.read_manifest(str(tmp_path / "out" / "manifest.jsonl"))) == 4


class _CountWrites:
    """Dask worker plugin: logs every completed .hnr write to a side file (kept across worker restarts)."""

    def __init__(self, log: str) -> None:
        self.log = log

    def setup(self, worker) -> None:
        from hinercodec.formats import cubeio

        original = cubeio.atomic_write_bytes
        log = self.log

        def counted(path, data, force=False, **keywords):  # target: the output claimed before the encode
            original(path, data, force=force, **keywords)
            with open(log, "a") as f:
                f.write(f"{path}\n")

        cubeio.atomic_write_bytes = counted


@pytest.mark.slow
def test_killed_worker_every_scene_written_once(tmp_path):
    _dask()
    import cloudpickle
    from distributed import Client, LocalCluster, WorkerPlugin

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    plugin = type("CountWrites", (_CountWrites, WorkerPlugin), {})(str(tmp_path / "writes.log"))
    scenes = _crops(tmp_path / "in", 6)
    tasks = archive.plan(scenes, str(tmp_path / "out"))
    first_done = threading.Event()
    killed: dict = {}
    finished: list = []

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as client:
        client.register_plugin(plugin)

        def kill_a_busy_worker() -> None:
            first_done.wait(120)
            for _ in range(200):
                busy = [addr for addr, keys in client.processing().items() if keys]
                if busy:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.update(address=busy[0], pid=pid, finished=len(finished))
                    return
                threading.Event().wait(0.05)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        summary = archive.run(tasks, OPTIONS, scheduler=cluster.scheduler_address,
                              progress=lambda record, done, total: (finished.append(record), first_done.set()))
        killer.join()

    assert killed and killed["finished"] < len(tasks), f"no worker killed mid-run: {killed}"
    assert sorted(r["input"] for r in summary.records) == sorted(scenes)
    # "skipped": the worker died after writing but before reporting; the re-run found the file valid
    assert all(r["status"] in ("ok", "skipped") for r in summary.records), summary.records
    writes = Counter((tmp_path / "writes.log").read_text().splitlines())
    assert all(n == 1 for n in writes.values()), writes  # no output written twice
    status = {r["output"]: r["status"] for r in summary.records}
    for task in tasks:  # no log line: the kill fell between the write and its log line; the re-run kept the file
        assert writes[task.output] == 1 or status[task.output] == "skipped", (task.output, writes, status)
    for task in tasks:
        f = unpack(Path(task.output).read_bytes())
        assert (f.height, f.width, f.bands) == (32, 32, 16)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(Path(t.output).name for t in tasks)
