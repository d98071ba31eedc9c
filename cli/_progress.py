"""Encoding progress on stderr: one redrawn line on a terminal, a line every ~10 % in a log.

A redrawn line in a log file would be one huge line of carriage returns, and a line per epoch
would drown it, hence the two modes.
"""
from __future__ import annotations

import math
import shutil
import sys
from typing import TYPE_CHECKING, Optional, TextIO

if TYPE_CHECKING:  # hinercodec.api is imported only by commands that run the model
    from hinercodec.api import Progress


def format_progress(p: "Progress") -> str:
    """`fit: epoch 12/300  loss 0.00123  PSNR 38.21 dB  <note>` (fields left out when unknown)."""
    step = f"epoch {p.step}/{p.total}" if p.stage == "fit" else f"{p.step}/{p.total}"
    parts = [f"{p.stage}: {step}" if p.total > 0 else f"{p.stage}:"]
    if math.isfinite(p.loss):
        parts.append(f"loss {p.loss:.4g}")
    if math.isfinite(p.psnr):
        parts.append(f"PSNR {p.psnr:.2f} dB")
    if p.note:
        parts.append(p.note)
    return "  ".join(parts)


class ProgressPrinter:
    """The `progress` callback of `api.encode`; call `close()` before printing anything else."""

    def __init__(self, stream: Optional[TextIO] = None, tty: Optional[bool] = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(self.stream.isatty()) if tty is None else tty
        self._shown: dict[str, int] = {}  # stage -> last tenth printed (log mode)
        self._width = 0  # length of the line currently drawn (terminal mode)

    def __call__(self, p: "Progress") -> None:
        text = format_progress(p)
        if self.tty:
            text = text[: max(20, shutil.get_terminal_size().columns - 1)]
            self.stream.write("\r" + text + " " * max(0, self._width - len(text)))
            self._width = len(text)
            self.stream.flush()
            return
        tenth = 10 if p.total <= 0 else min(10, (10 * p.step) // p.total)
        if self._shown.get(p.stage) != tenth:
            self._shown[p.stage] = tenth
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """End the redrawn line so that the summary or an error starts on a fresh line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
