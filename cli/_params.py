"""Option types of `hinerc`: a malformed value is a usage error (exit 2) before any work starts."""
from __future__ import annotations

import re
from typing import Optional

import click

_DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?)\Z")
_BAND = re.compile(r"(\d+)(?:-(\d+))?\Z")
_WINDOW = re.compile(r"(\d+):(\d+),(\d+):(\d+)\Z")


class Device(click.ParamType):
    """auto | cpu | cuda | cuda:N (whether that device exists is the library's to say)."""

    name = "auto|cpu|cuda[:N]"

    def convert(self, value, param, ctx) -> str:
        text = str(value).strip().lower()
        if not _DEVICE.match(text):
            self.fail(f"{value!r} is not auto, cpu, cuda or cuda:N", param, ctx)
        return text


class BandList(click.ParamType):
    """'0,5,10-20': 0-based band indices, ranges inclusive, kept in the order given ('20-10' counts down)."""

    name = "SPEC"

    def convert(self, value, param, ctx) -> list[int]:
        if isinstance(value, list):
            return value
        bands: list[int] = []
        for token in str(value).split(","):
            m = _BAND.match(token.strip())
            if not m:
                self.fail(f"{token.strip()!r} is not a band index or a range such as 10-20", param, ctx)
            first = int(m.group(1))
            last = int(m.group(2)) if m.group(2) is not None else first
            step = 1 if last >= first else -1
            bands.extend(range(first, last + step, step))
        return bands


class FloatList(click.ParamType):
    """One number or a comma-separated list, so that `--nm 410,430` equals `--nm 410 --nm 430`."""

    name = "X[,X...]"

    def convert(self, value, param, ctx) -> list[float]:
        if isinstance(value, list):
            return value
        try:
            return [float(t) for t in str(value).split(",")]
        except ValueError:
            self.fail(f"{value!r} is not a number or a comma-separated list of numbers", param, ctx)


class WindowSpec(click.ParamType):
    """'Y0:Y1,X0:X1': rows Y0..Y1-1 and columns X0..X1-1, 0-based, ends exclusive (numpy slices)."""

    name = "Y0:Y1,X0:X1"

    def convert(self, value, param, ctx) -> tuple[int, int, int, int]:
        if isinstance(value, tuple):
            return value
        m = _WINDOW.match(str(value).replace(" ", ""))
        if not m:
            self.fail(f"{value!r} is not a window such as 0:256,512:768 (rows, then columns)", param, ctx)
        y0, y1, x0, x1 = (int(g) for g in m.groups())
        if y1 <= y0 or x1 <= x0:
            self.fail(f"{value!r} is empty: each range must end after it starts", param, ctx)
        return y0, y1, x0, x1


def flatten(groups: Optional[tuple[list[float], ...]]) -> Optional[list[float]]:
    """Join the values of a repeated FloatList option; None when the option was not given."""
    if not groups:
        return None
    return [x for group in groups for x in group]


DEVICE = Device()
WINDOW = WindowSpec()
