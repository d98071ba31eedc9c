"""Option types of `hinerc`: a malformed value is a usage error (exit 2) before any work starts."""
from __future__ import annotations

import math
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
    """One number or a comma-separated list, so that `--nm 410,430` equals `--nm 410 --nm 430`.

    NaN and infinities are refused; with `low`/`high`, so is any value outside [low, high]."""

    name = "X[,X...]"

    def __init__(self, low: Optional[float] = None, high: Optional[float] = None) -> None:
        self.low, self.high = low, high

    def convert(self, value, param, ctx) -> list[float]:
        if isinstance(value, list):
            return value
        try:
            values = [float(t) for t in str(value).split(",")]
        except ValueError:
            self.fail(f"{value!r} is not a number or a comma-separated list of numbers", param, ctx)
        for x in values:
            if not math.isfinite(x):
                self.fail(f"{x} is not a finite number", param, ctx)
            if (self.low is not None and x < self.low) or (self.high is not None and x > self.high):
                self.fail(f"{x:g} is outside [{self.low:g}, {self.high:g}]", param, ctx)
        return values


class PositiveFloat(click.ParamType):
    """A finite number above 0 (click.FloatRange lets 'nan' and 'inf' through); with
    `zero=True`, 0 too."""

    name = "FLOAT"

    def __init__(self, zero: bool = False):
        self.zero = zero

    def convert(self, value, param, ctx) -> float:
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(x) or x < 0 or (x == 0 and not self.zero):
            self.fail(f"{value!r} is not a finite number {'>= 0' if self.zero else 'above 0'}", param, ctx)
        return x


class TileSide(click.ParamType):
    """--tile: 0 (never tile) or a side of at least MIN_TILE pixels (the decoder upsamples x4 from
    at least 4 x 4 latents: hinercodec.api.MIN_SIDE x 4)."""

    name = "N"
    MIN_TILE = 16

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and (value == 0 or value >= self.MIN_TILE):
            return value
        try:
            n = int(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if n != 0 and n < self.MIN_TILE:
            self.fail(f"{n} must be 0 (never tile) or at least {self.MIN_TILE} pixels", param, ctx)
        return n


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
POSITIVE = PositiveFloat()
FINITE_NONNEGATIVE = PositiveFloat(zero=True)
TILE = TileSide()
# One default and one help text for every command's --device (encode, decode, interp, eval, demo).
DEFAULT_DEVICE = "auto"
DEVICE_HELP = ("auto (cuda when available, else cpu), cpu, cuda or cuda:N. The default transform model "
               "encodes and decodes with numpy and ignores it; the network models run on it.")


def check_device(device: str) -> None:
    """A cuda device that this machine does not have is a usage error (exit 2), found before any work."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise click.BadParameter(f"{device!r}: CUDA is not available here; use auto or cpu", param_hint="'--device'")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise click.BadParameter(f"{device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                                 param_hint="'--device'")
