"""What the benchmark ran on: PROTOCOL.md asks for the GPU model, or the CPU and its cores."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from typing import Optional


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gpu_models() -> Optional[list[str]]:
    """NVIDIA GPU names from nvidia-smi, or None when there is none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return names or None


def machine_info() -> dict:
    """CPU model, logical cores (and those this process may use), GPU list, platform."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "gpu": gpu_models(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def cpu_ticks() -> Optional[tuple[int, int]]:
    """(ticks stolen by the hypervisor, all ticks) of every CPU since boot, from /proc/stat (None
    elsewhere): two readings give the share of a run's time a virtual machine did not get."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def stolen_share(start: Optional[tuple[int, int]], end: Optional[tuple[int, int]]) -> Optional[float]:
    """The share of CPU time stolen between two cpu_ticks() readings (None where unknown)."""
    if start is None or end is None or end[1] <= start[1]:
        return None
    return (end[0] - start[0]) / (end[1] - start[1])


def describe(info: dict) -> str:
    """One line for the table header."""
    gpu = ", ".join(info["gpu"]) if info["gpu"] else "no GPU"
    return f"{info['cpu']}, {info['usable_cores']}/{info['cores']} cores, {gpu}"


def compile_sources(root) -> None:
    """Byte-compile the repository's Python sources (hinercodec, formats, cli, benchmarks) before
    timing child processes: an installed package loads bytecode, and a machine that sets
    PYTHONDONTWRITEBYTECODE (this one does) would otherwise compile every edited module again in
    every timed process (about 0.1 s of a small scene's encode)."""
    import compileall
    from pathlib import Path

    for name in ("hinercodec", "formats", "cli", "benchmarks"):
        if (Path(root) / name).is_dir():
            compileall.compile_dir(str(Path(root) / name), quiet=1)
