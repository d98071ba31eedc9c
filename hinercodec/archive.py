"""Many scene files in, one .hnr each: serially, or as tasks on a Dask cluster.

An archive run must survive what one `hinerc encode` never meets: a bad scene among thousands, a
run killed half way, a worker machine that dies. Hence each scene is an isolated task that returns
a record instead of raising, checks for a valid output before it encodes (so a rerun, or Dask
re-running a task whose worker died, never writes an output twice), and writes atomically (so
nothing partial is left). Dask (`pip install hinerc[cluster]`) is optional; without it the same
tasks run one after another in this process and give the same records and files.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np

from .errors import CorruptFileError, HinercError, OutputError, UsageError
from .formats.cubeio import probe_directory
from .formats.tiled import read_any

if TYPE_CHECKING:
    from .api import EncodeOptions

STATUSES = ("ok", "skipped", "failed")
INSTALL_HINT = "install the cluster extra: pip install 'hinerc[cluster]'"

Wavelengths = Union[None, str, Sequence[float], np.ndarray]


@dataclass(frozen=True)
class Task:
    """One scene: its input path and the .hnr path it is encoded to."""

    input: str
    output: str


@dataclass
class Summary:
    """What `run` did: one record per task, in the order they finished."""

    records: list[dict]
    seconds: float

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.records)


ProgressFn = Callable[[dict, int, int], None]  # (record, finished so far, total)


# ----------------------------------------------------------------------------------------------- planning


def plan(inputs: Iterable[str], out_dir: Optional[str] = None) -> list[Task]:
    """Pair each input with OUT_DIR/<stem>.hnr (None: beside the input); refuse clashes before any work.

    A path given twice is encoded once. Two inputs that would write one output (same stem) are a
    UsageError (exit 2): silently numbering them would make outputs impossible to match to scenes.
    """
    tasks: list[Task] = []
    writers: dict[str, str] = {}  # absolute output -> the input that writes it
    seen: set[str] = set()
    for raw in inputs:
        raw = str(raw)
        if raw == "-":
            raise UsageError("stdin ('-') cannot be one of several inputs; give file paths")
        source = os.path.abspath(raw)
        if source in seen:
            continue
        seen.add(source)
        output = (Path(out_dir) if out_dir is not None else Path(raw).parent) / f"{Path(raw).stem}.hnr"
        target = os.path.abspath(output)
        if target == source:
            raise UsageError(f"{raw}: its output {output} would overwrite the input")
        if target in writers:
            raise UsageError(f"{writers[target]} and {raw} would both be encoded to {output}; "
                               "rename one or encode them into different directories")
        writers[target] = raw
        tasks.append(Task(raw, str(output)))
    if not tasks:
        raise UsageError("no input files given")
    return tasks


# ----------------------------------------------------------------------------------------------- one scene


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _record(task: Task, status: str, worker: Optional[str]) -> dict:
    """A manifest record with every field present (null until known)."""
    return {"input": task.input, "output": task.output, "status": status, "shape": None, "bytes": None,
            "bpppb": None, "psnr_band": None, "seconds": None, "device": None, "worker": worker}


def _current_worker() -> Any:
    """The Dask worker running this code, or None (serial run, or Dask not installed)."""
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        return get_worker()
    except ValueError:
        return None


def _has_gpu(worker: Any) -> bool:
    return worker is not None and worker.state.total_resources.get("GPU", 0) > 0


def _existing(path: str) -> Optional[dict]:
    """Header facts of a valid .hnr at `path`; None when there is none or it fails its checksums.

    An UnsupportedFileError (a newer hinerc's file) propagates: replacing it would lose data.
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    try:
        parsed = read_any(data)
    except CorruptFileError:
        return None
    f = parsed if not isinstance(parsed, tuple) else parsed[0]  # a tiled file: its head
    return {"shape": [f.height, f.width, f.bands], "bytes": len(data),
            "bpppb": 8 * len(data) / (f.height * f.width * f.bands)}


def encode_task(task: Task, options: "EncodeOptions", key: Optional[str] = None, wavelengths: Wavelengths = None,
                force: bool = False, layout: Optional[str] = None, nodata: Optional[float] = None) -> dict:
    """Encode one scene and return its manifest record; never raises for a scene's own failure.

    Runs wherever it is scheduled. An existing valid output is kept ("skipped") unless `force`; one
    that fails its checksums is encoded again and replaced. On a Dask worker with a GPU resource
    the device becomes "cuda"; on other workers "auto" means CPU, so that CPU workers sharing a
    machine with a GPU do not all crowd onto it.
    """
    started = time.perf_counter()
    worker = _current_worker()
    record = _record(task, "ok", worker.address if worker is not None else "local")
    try:
        found = None if force else _existing(task.output)
        if found is not None:
            record.update(found, status="skipped")
        else:
            from .scene import encode_file  # imports torch: only where a scene is really encoded

            device = options.device
            if _has_gpu(worker) and not device.startswith("cuda"):
                device = "cuda"
            elif worker is not None and device == "auto":
                device = "cpu"
            damaged = not force and os.path.lexists(task.output)
            summary, _ = encode_file(task.input, task.output, replace(options, device=device), key=key,
                                     wavelengths=wavelengths, force=force or damaged, map_fn=dask_map,
                                     layout=layout, nodata=nodata)
            record.update({k: summary[k] for k in ("shape", "bytes", "bpppb", "psnr_band", "seconds", "device")})
            if damaged:
                record["note"] = "replaced a damaged output"
            return record  # seconds as `hinerc encode` reports them: reading to the file on disk
    except HinercError as exc:
        record.update(status="failed", error=_one_line(exc))
    except Exception as exc:  # a bug or a resource failure in one scene must not stop the others
        record.update(status="failed", error=f"internal error: {type(exc).__name__}: {_one_line(exc)}")
    record["seconds"] = time.perf_counter() - started
    return record


def dask_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> list:
    """`map` for the tile fits of one scene: as further tasks when called inside a Dask task.

    The scene task secedes while it waits (worker_client), so its thread runs tiles too. On a GPU
    worker, or outside Dask, the tiles run here one after another: a scene task holds its GPU
    resource while waiting, so tile tasks asking for a GPU could wait for it forever.
    """
    items = list(items)
    worker = _current_worker()
    if worker is None or _has_gpu(worker):
        return list(map(fn, items))
    from distributed import worker_client

    with worker_client() as client:
        return client.gather(client.map(fn, items, pure=False, priority=1))


# ----------------------------------------------------------------------------------------------- manifest


class _Manifest:
    """Append JSON lines, flushed and fsynced one by one, so a killed run leaves a valid prefix.

    Runs append to the same file: an earlier run's "ok" records keep each scene's statistics when
    a resumed run reports it "skipped". A half line left by a killed run is cut off first.
    """

    def __init__(self, path: Optional[str]) -> None:
        self.file = None
        self.path = path
        if path is None:
            return
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a+b")
            size = self.file.seek(0, os.SEEK_END)
            if size:
                self.file.seek(0)
                data = self.file.read()
                if not data.endswith(b"\n"):
                    self.file.truncate(data.rfind(b"\n") + 1)
        except OSError as exc:
            if self.file is not None:
                self.file.close()
            raise OutputError(f"cannot write the manifest {path}: {exc.strerror or exc}") from None

    def write(self, record: dict) -> None:
        if self.file is None:
            return
        try:
            self.file.write(json.dumps(_jsonable(record), sort_keys=True).encode() + b"\n")
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else exc
            raise OutputError(f"cannot write the manifest {self.path}: {reason}") from None

    def close(self) -> None:
        if self.file is not None:
            file, self.file = self.file, None
            try:
                file.close()
            except OSError:  # a failed flush was reported by write already
                pass


def _jsonable(value: Any) -> Any:
    """Non-finite floats (PSNR of an exact band) as null: strict JSON readers reject Infinity."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def read_manifest(path: str) -> list[dict]:
    """All records of a manifest, oldest first; the last record of an output is its current state."""
    with open(path, "rb") as f:
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


# ----------------------------------------------------------------------------------------------- running


def _dask_available() -> bool:
    return importlib.util.find_spec("distributed") is not None


def _visible_gpus(device: str) -> list[str]:
    """CUDA devices a local cluster should give one worker each (none when the user asked for CPU)."""
    if device == "cpu":
        return []
    import torch

    count = torch.cuda.device_count()
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return (visible or [str(i) for i in range(count)])[:count]


def worker_specs(workers: int, gpus: Sequence[str]) -> dict:
    """Dask SpecCluster worker specs: one single-threaded process per CPU worker, or one per GPU.

    A GPU worker sees only its own device (CUDA_VISIBLE_DEVICES) and advertises GPU=1, so the
    scheduler runs one scene per GPU at a time.
    """
    from distributed import Nanny

    common = {"nthreads": 1, "host": "127.0.0.1", "dashboard": False, "silence_logs": logging.ERROR}
    if gpus:
        return {f"gpu{d}": {"cls": Nanny, "options": {**common, "resources": {"GPU": 1},
                                                      "env": {"CUDA_VISIBLE_DEVICES": d}}}
                for d in list(gpus)[:workers]}
    return {f"cpu{i}": {"cls": Nanny, "options": common} for i in range(workers)}


def _local_cluster(workers: Optional[int], tasks: int, device: str) -> Any:
    """A cluster on this machine: one worker per GPU, else one per core (no more than tasks)."""
    import dask
    from distributed import Scheduler, SpecCluster

    gpus = _visible_gpus(device)
    cores = os.cpu_count() or 1
    count = workers or (len(gpus) if gpus else min(cores, tasks))
    threads = max(1, cores // count)  # torch threads per worker: the cores shared out
    with dask.config.set({"distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS": threads,
                          "distributed.nanny.pre-spawn-environ.MKL_NUM_THREADS": threads}):
        return SpecCluster(workers=worker_specs(count, gpus),
                           scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False}},
                           silence_logs=logging.ERROR, name="hinerc")


def _lost(task: Task, exc: BaseException) -> dict:
    """The record of a task Dask gave up on (its workers kept dying, or it was cancelled)."""
    return {**_record(task, "failed", None),
            "error": f"task lost on the cluster: {type(exc).__name__}: {_one_line(exc)}"}


def _already_done(task: Task) -> Optional[dict]:
    """A "skipped" record when the output is valid, checked here so a resumed run starts no cluster
    for finished scenes; anything doubtful is left to the task, which checks again."""
    started = time.perf_counter()
    try:
        found = _existing(task.output)
    except HinercError:
        return None
    if found is None:
        return None
    return {**_record(task, "skipped", "local"), **found, "seconds": time.perf_counter() - started}


def _run_dask(tasks: list[Task], call: dict, workers: Optional[int], scheduler: Optional[str],
              finish: Callable[[dict], None]) -> None:
    from distributed import Client, as_completed

    cluster = None
    try:
        if scheduler is None:
            cluster = _local_cluster(workers, len(tasks), call["options"].device)
        try:
            client = Client(cluster if cluster is not None else scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler {scheduler}: {_one_line(exc)}") from None
        try:
            client.wait_for_workers(1)
            gpus = any(w.get("resources", {}).get("GPU", 0) > 0
                       for w in client.scheduler_info()["workers"].values())
            resources = {"GPU": 1} if gpus and call["options"].device != "cpu" else None
            futures = {client.submit(encode_task, task, pure=False, resources=resources, **call): task
                       for task in tasks}
            for future in as_completed(futures):
                try:
                    record = future.result()
                except Exception as exc:  # KilledWorker after repeated worker deaths, CancelledError
                    record = _lost(futures[future], exc)
                finish(record)
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _remove_temporaries(tasks: Sequence[Task]) -> None:
    """Delete temp files that a killed writer left beside our outputs (cubeio's `.NAME.<hex>.tmp`)."""
    for task in tasks:
        out = Path(task.output)
        pattern = re.compile(rf"\.{re.escape(out.name)}\.[0-9a-f]{{12}}\.tmp\Z")
        try:
            leftovers = [p for p in out.parent.iterdir() if pattern.match(p.name)]
        except OSError:
            continue
        for path in leftovers:
            try:
                path.unlink()
            except OSError:
                pass


def run(tasks: Sequence[Task], options: "EncodeOptions", *, key: Optional[str] = None,
        wavelengths: Wavelengths = None, force: bool = False, workers: Optional[int] = None,
        scheduler: Optional[str] = None, manifest: Optional[str] = None,
        progress: Optional[ProgressFn] = None, layout: Optional[str] = None, nodata: Optional[float] = None) -> Summary:
    """Encode every task; a scene's failure is a "failed" record, never an exception.

    Where it runs: `scheduler` (an address such as tcp://host:8786) uses that Dask cluster;
    `workers=0` runs serially here; `workers=N` starts a local Dask cluster of N workers; None
    starts a local cluster sized to the machine when Dask is installed and more than one scene is
    left to encode, else runs serially. Without `force`, outputs that exist and pass their
    checksums are skipped (resume), before any cluster starts. Records go to `manifest` (JSON
    lines, appended) and `progress` as each scene finishes. Raises (before any work)
    UsageError (exit 2) for a bad combination of options, OutputError (exit 9) for an output
    directory or manifest that cannot be written: every directory is created and a file made and
    removed in it before any scene is read.
    """
    if scheduler is not None and workers is not None:
        raise UsageError("--workers sizes a local cluster; it cannot be combined with --scheduler")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {workers}")
    dask_ok = _dask_available()
    if (scheduler is not None or (workers or 0) > 0) and not dask_ok:
        raise UsageError(f"{'--scheduler' if scheduler else '--workers'} needs Dask; {INSTALL_HINT}")
    started = time.perf_counter()
    for directory in sorted({str(Path(t.output).parent) for t in tasks}):
        probe_directory(directory)  # created and writable, or OutputError before any scene is read
    records: list[dict] = []
    log = _Manifest(manifest)

    def finish(record: dict) -> None:
        records.append(record)
        log.write(record)
        if progress is not None:
            progress(record, len(records), len(tasks))

    call = {"options": options, "key": key, "wavelengths": wavelengths, "force": force}
    if layout is not None or nodata is not None:  # (kept out otherwise: the same calls as before)
        call.update(layout=layout, nodata=nodata)
    serial = True
    try:
        pending = []
        for task in tasks:
            done = None if force else _already_done(task)
            if done is None:
                pending.append(task)
            else:
                finish(done)
        serial = workers == 0 or (scheduler is None and workers is None and (not dask_ok or len(pending) < 2))
        if serial:
            for task in pending:
                finish(encode_task(task, **call))
        elif pending:
            _run_dask(pending, call, workers, scheduler, finish)
    finally:
        log.close()
        if serial or scheduler is None or len(records) == len(tasks):  # no task of ours is still running
            _remove_temporaries(tasks)
    return Summary(records, time.perf_counter() - started)
