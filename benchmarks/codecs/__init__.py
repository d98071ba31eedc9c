"""Codec adapters for the rate-distortion harness: one small module per codec, one interface (base.Codec)."""
from __future__ import annotations

from typing import Sequence

from .base import Codec, CodecError, Job
from .hinerc import Hinerc
from .jpeg2000 import Jpeg2000
from .pca_jpeg2000 import PcaJpeg2000
from .pca_x265 import PcaX265
from .x265 import X265

CODEC_NAMES = ("hinerc", "hiner", "jpeg2000", "pca-jpeg2000", "pca-x265", "x265")


def make_codec(name: str, hinerc_args: Sequence[str] = ()) -> Codec:
    """The adapter called `name` (one of CODEC_NAMES); `hinerc_args` go to every `hinerc encode`."""
    if name == "hinerc":
        return Hinerc("hinerc", None, hinerc_args)
    if name == "hiner":
        return Hinerc("hiner", "hiner", hinerc_args)
    classical = {"jpeg2000": Jpeg2000, "pca-jpeg2000": PcaJpeg2000, "pca-x265": PcaX265, "x265": X265}
    if name not in classical:
        raise ValueError(f"unknown codec {name!r}; known: {', '.join(CODEC_NAMES)}")
    return classical[name]()


__all__ = ["CODEC_NAMES", "Codec", "CodecError", "Job", "make_codec"]
