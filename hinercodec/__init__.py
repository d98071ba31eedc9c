"""hinerc: hyperspectral image compression with neural representations.

The public API (`encode`, `decode`, `interp`, `info`, `evaluate`, `read_cube`, `write_cube`) is
loaded lazily so that `import hinercodec.formats` (the file format, which never needs torch) stays
light: torch is imported only when a model is fitted or run.
"""
from __future__ import annotations

__version__ = "0.4.0"

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
