"""What a user can set on an encode, the progress reports and the result: no model code here.

`EncodeOptions` is validated once (`check`), per codec: an option that the chosen codec does not
use is an error when it was set to anything but its default (never silently ignored).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Callable, Optional

from .errors import UsageError

DEFAULT_BPPPB = 0.2
DEFAULT_MODEL = "transform"
MIN_SIDE = 4  # smallest height/width: the network decoders upsample at least x4
SPLITS = ("difficulty", "equal")  # how tiles share the byte budget
METRICS = ("psnr_band", "psnr_global")  # what the transform codec maximises (PROTOCOL.md's two PSNRs)


@dataclass
class EncodeOptions:
    """What a user can set on `hinerc encode` (all have documented defaults)."""

    bpppb: float = DEFAULT_BPPPB  # rate target: written file is <= bpppb and >= 0.9 * bpppb
    model: str = DEFAULT_MODEL
    bits: int = 8  # quantisation bits of network weights (4..10); networks only
    effort: int = 3  # 1 (fast) .. 9 (slow); the networks' epochs when `epochs` is None
    epochs: Optional[int] = None  # networks only
    seed: int = 0
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    tile: Optional[int] = None  # split cubes with a side over this into tiles of at most tile x tile; 0: never;
    # None: auto (api.tile_for): DEFAULT_TILE for the network models, only very large cubes for "transform"
    split: str = "difficulty"  # how tiles share the byte budget: "difficulty" (measured +0.8 dB) or "equal"
    threads: Optional[int] = None  # tiles fitted at once in this process (transform; None: one per core)
    optimise: str = "psnr_band"  # transform only: maximise PSNR_band (band weights) or PSNR_global (plain MSE)
    lossless: bool = False  # every value exact (model "lossless", bound 0)
    max_error: Optional[float] = None  # every value within this of the original, in the cube's units

    @classmethod
    def from_keywords(cls, base: Optional["EncodeOptions"] = None, **keywords) -> "EncodeOptions":
        """`base` (or the defaults) with `keywords` replacing fields: encode(cube, bpppb=0.1)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(keywords) - names)
        if unknown:
            raise TypeError(f"unknown encode option(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        opts = cls() if base is None else base
        return cls(**{**{f.name: getattr(opts, f.name) for f in fields(cls)}, **keywords})


_DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?)\Z")
NETWORK_ONLY = ("bits", "epochs")  # options the transform and lossless codecs have no use for
TRANSFORM_ONLY = ("optimise",)
NUMPY_CODECS = ("transform", "lossless")


def resolved(opts: EncodeOptions) -> EncodeOptions:
    """--lossless and --max-error select the lossless codec (at bound 0 or E): the options as run."""
    if not (opts.lossless or opts.max_error is not None):
        return opts
    if opts.lossless and opts.max_error not in (None, 0):
        raise UsageError("--lossless and --max-error are exclusive (--lossless is --max-error 0)")
    if opts.model not in (DEFAULT_MODEL, "lossless"):
        raise UsageError(f"--lossless/--max-error use the lossless codec, not --model {opts.model}")
    if opts.bpppb != DEFAULT_BPPPB:
        raise UsageError("--bpppb and --lossless/--max-error are exclusive: a bound sets the rate")
    e = 0.0 if opts.lossless else opts.max_error
    if not (isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) and e >= 0):
        raise UsageError(f"--max-error must be a finite number >= 0, got {e}")
    return EncodeOptions.from_keywords(opts, model="lossless", max_error=e, lossless=False)


def check(opts: EncodeOptions, models: tuple[str, ...]) -> None:
    """UsageError (exit 2) for a value no codec accepts or an option the chosen codec ignores
    (call on resolved options)."""
    if not (isinstance(opts.bpppb, (int, float)) and math.isfinite(opts.bpppb) and opts.bpppb > 0):
        raise UsageError(f"--bpppb must be a positive finite number, got {opts.bpppb}")
    if not (isinstance(opts.bits, int) and 4 <= opts.bits <= 10):
        raise UsageError(f"--bits must be an integer 4..10, got {opts.bits}")
    if not (isinstance(opts.effort, int) and 1 <= opts.effort <= 9):
        raise UsageError(f"--effort must be an integer 1..9, got {opts.effort}")
    if opts.epochs is not None and not (isinstance(opts.epochs, int) and opts.epochs >= 1):
        raise UsageError(f"--epochs must be a positive integer, got {opts.epochs}")
    if opts.model not in models:
        raise UsageError(f"unknown model {opts.model!r} (known: {', '.join(sorted(models))})")
    if opts.tile is not None and not (isinstance(opts.tile, int) and (opts.tile == 0 or opts.tile >= 4 * MIN_SIDE)):
        raise UsageError(f"--tile must be 0 (never tile) or at least {4 * MIN_SIDE} pixels, got {opts.tile}")
    if opts.optimise not in METRICS:
        raise UsageError(f"--optimise must be one of {', '.join(METRICS)}, got {opts.optimise!r}")
    if not (isinstance(opts.device, str) and _DEVICE.match(opts.device)):
        raise UsageError(f"unknown device {opts.device!r} (use auto, cpu, cuda or cuda:N)")
    if opts.threads is not None and not (isinstance(opts.threads, int) and not isinstance(opts.threads, bool)
                                         and opts.threads >= 1):
        raise UsageError(f"--threads must be a whole number of at least 1, got {opts.threads!r}")
    if opts.split not in SPLITS:
        raise UsageError(f"--split must be one of {', '.join(SPLITS)}, got {opts.split!r}")
    if opts.model == "lossless" and opts.tile not in (None, 0):
        raise UsageError("the lossless codec codes the whole cube: --tile does not apply")
    default = EncodeOptions()
    ignored = (NETWORK_ONLY if opts.model in NUMPY_CODECS else ()) + (TRANSFORM_ONLY if opts.model != "transform" else ())
    for name in ignored:
        if getattr(opts, name) != getattr(default, name):
            raise UsageError(f"--{name} has no effect with --model {opts.model}")


@dataclass
class Progress:
    """One progress report from an encoder (the CLI draws a line from these)."""

    stage: str  # "fit", "size", "search", ...
    step: int
    total: int
    loss: float = float("nan")
    psnr: float = float("nan")
    note: str = ""


ProgressFn = Callable[[Progress], None]


@dataclass
class EncodeResult:
    data: bytes  # the complete .hnr file
    bpppb: float  # 8 * len(data) / (H * W * C)
    psnr_band: float  # of the decoded file against the input (PROTOCOL.md)
    seconds: float  # fitting + quantisation + coding (the CLI adds loading and writing)
    device: str
    stats: dict = field(default_factory=dict)
