"""hinerc: a hyperspectral image codec (a spectral transform codec by default; the HINER network and
others as options).

The public API (`encode`, `decode`, `interp`, `info`, `evaluate`, `read_cube`, `write_cube`) is
loaded lazily, so that importing the package costs nothing; torch is imported only when a network
model is fitted or run (the default codec is numpy only).
"""
from __future__ import annotations

__version__ = "0.9.10"

_LAZY = {
    "encode": "hinercodec.api",
    "decode": "hinercodec.api",
    "interp": "hinercodec.api",
    "info": "hinercodec.api",
    "evaluate": "hinercodec.api",
    "EncodeOptions": "hinercodec.api",
    "EncodeResult": "hinercodec.api",
    "read_cube": "hinercodec.formats.cubeio",
    "write_cube": "hinercodec.formats.cubeio",
    "Cube": "hinercodec.formats.cubeio",
    "distortion": "hinercodec.metrics",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hinercodec' has no attribute {name!r}")
