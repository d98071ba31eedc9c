"""The one list of codecs: what the CLI offers, what the encoders run, what the file reader decodes.

A codec is found by its `--model` name (encoding) or by the MODL value a file carries (decoding).
Modules are named, not imported, so that looking a codec up costs nothing: decoding a transform
file imports numpy code only, never torch (tests/test_layout.py checks it).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import UnsupportedFileError, UsageError


@dataclass(frozen=True)
class Codec:
    name: str  # the --model name
    summary: str
    encoder: Optional[str]  # "module:function" taking a codecs.base.Job, or None (decode only)
    decoder: str  # "module:Class": Class(config, payload or tensors, positions, units[, device]).render(t, rect)
    decodes: tuple[str, ...]  # the MODL "model" values its decoder reads
    payload: bool  # its own bitstream (True) or quantised network weights in TENS (False)
    needs_torch: bool
    effort: str  # what --effort 1..9 sets
    experimental: bool = False
    normalised_input: bool = True  # its encoder reads Job.target (the normalised cube); False: Job.cube only
    planner: Optional[str] = None  # "module:function": the search's plan for every tile of a large cube, found
    # once on a sample of it (transform.encoder.plan_reader), handed to each tile as Job.plan
    blends_tiles: bool = True  # a tiled cube's tiles overlap and the decoder blends them (networks: no seams
    # where a network fits its edges worst); False: tiles side by side, each coding its own pixels once


CODECS = {
    "transform": Codec(
        "transform", "spectral basis x CDF 9/7 wavelet images, context-modelled rANS (the default)",
        "hinercodec.codecs.default:encode", "hinercodec.codecs.transform.decoder:TransformDecoder",
        ("transform", "transform2"), payload=True, needs_torch=False,
        effort="re-weighting passes 0, 1, 2, 3, 3, 4, 4, 5, 6 and dead-zone roundings tried (1 up to 3, 2 at 4, 3 from 5)",
        planner="hinercodec.codecs.transform.encoder:plan_reader", blends_tiles=False),
    "lossless": Codec(
        "lossless", "every value exact (--lossless) or within a bound (--max-error): adaptive prediction, "
        "context-modelled range coding", "hinercodec.codecs.lossless.codec:encode",
        "hinercodec.codecs.lossless.codec:LosslessDecoder", ("lossless",), payload=True, needs_torch=False,
        effort="nothing (one setting)", normalised_input=False),
    "hiner": Codec(
        "hiner", "the paper's network: wavelength -> positional encoding -> MLP -> embedding -> NeRV blocks",
        "hinercodec.codecs.networks.encoder:encode_hiner", "hinercodec.codecs.networks.decoder:NetworkDecoder",
        ("hiner",), payload=False, needs_torch=True,
        effort="epochs 30, 100, 300, 500, 800, 1200, 1800, 2500, 3500"),
    "latent": Codec(
        "latent", "latent grids + synthesis network (the default of 0.1-0.2; experimental encoder)",
        "hinercodec.experimental.latent_encoders:encode_latent", "hinercodec.codecs.networks.decoder:NetworkDecoder",
        ("latent",), payload=False, needs_torch=True,
        effort="steps 500, 1500, 3000, 5000, 8000, 12000, 16000, 24000, 32000", experimental=True),
    "lowrank": Codec(
        "lowrank", "per-component latent pyramids, no synthesis network (experimental encoder)",
        "hinercodec.experimental.latent_encoders:encode_lowrank", "hinercodec.codecs.networks.decoder:NetworkDecoder",
        ("lowrank",), payload=False, needs_torch=True,
        effort="steps as latent", experimental=True),
}

ENCODABLE = tuple(name for name, c in CODECS.items() if c.encoder is not None)


def _load(target: str, why: str):
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            raise why_torch(why) from None
        raise


def why_torch(what: str) -> Exception:
    return UnsupportedFileError(f"{what} needs PyTorch, which is not installed (pip install torch)")


def codec(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise UsageError(f"unknown model {name!r} (known: {', '.join(ENCODABLE)})") from None


def planner(name: str) -> Optional[Callable]:
    """The codec's tile planner (Codec.planner), or None."""
    c = codec(name)
    return None if c.planner is None else _load(c.planner, f"--model {name}")


def encoder(name: str) -> Callable:
    c = codec(name)
    if c.encoder is None:
        raise UsageError(f"model {name!r} can be decoded but not encoded")
    try:
        return _load(c.encoder, f"--model {name}")
    except UnsupportedFileError as exc:
        raise UsageError(str(exc)) from None


def for_file(model: object) -> Codec:
    """The codec that decodes files whose MODL says `model` (UnsupportedFileError if none)."""
    for c in CODECS.values():
        if model in c.decodes:
            return c
    known = sorted(m for c in CODECS.values() for m in c.decodes)
    raise UnsupportedFileError(f"model {model!r} needs a newer hinerc (this one knows: {', '.join(known)})")


def decoder_class(c: Codec):
    return _load(c.decoder, f"a file of model {c.name!r}")
