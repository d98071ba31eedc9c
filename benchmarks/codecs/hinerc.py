"""hinerc (and its HINER model) through the real `hinerc` command, as a user runs it.

Encode and decode are separate processes, timed wall clock by the harness (PROTOCOL.md "Time"):
loading, fitting, quantisation, coding and writing all count.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .base import Codec, CodecError, Job


def hinerc_command() -> Optional[str]:
    """The `hinerc` next to this Python (the venv's), else the one on PATH."""
    local = Path(sys.executable).with_name("hinerc")
    return str(local) if local.exists() else shutil.which("hinerc")


def run_hinerc(args: Sequence[str]) -> subprocess.CompletedProcess:
    """Run `hinerc ARGS`; a non-zero exit becomes a CodecError with its last stderr line."""
    exe = hinerc_command()
    if exe is None:
        raise CodecError("the hinerc command is not installed")
    proc = subprocess.run([exe, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise CodecError(f"hinerc {args[0]} failed (exit {proc.returncode}): {lines[-1]}")
    return proc


class Hinerc(Codec):
    """`name` = "hinerc" (the CLI's defaults) or "hiner" (`--model hiner`)."""

    suffix = ".hnr"

    def __init__(self, name: str = "hinerc", model: Optional[str] = None, extra_args: Sequence[str] = ()):
        self.name = name
        self.model_args = ["--model", model] if model else []
        self.extra_args = list(extra_args)

    def unavailable(self) -> Optional[str]:
        exe = hinerc_command()
        if exe is None:
            return "the hinerc command is not installed (pip install -e .)"
        proc = subprocess.run([exe, "encode", "--help"], capture_output=True, text=True)
        if proc.returncode != 0:
            return "`hinerc encode --help` fails: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
        return None

    def search(self, job: Job, target_bpppb: float) -> dict:
        return {"bpppb": target_bpppb}  # hinerc meets the rate target itself

    def encode(self, job: Job, settings: dict, out: Path) -> None:
        run_hinerc(["encode", str(job.path), "-o", str(out), "--bpppb", repr(settings["bpppb"]), "--quiet",
                    "-f", *self.model_args, *self.extra_args])

    def decode(self, path: Path, workdir: Path) -> np.ndarray:
        out = workdir / (path.stem + ".decoded.npy")
        run_hinerc(["decode", str(path), "-o", str(out), "-f"])
        return np.load(out)
