"""Lossless and error-bounded (near-lossless) coding of integer and float cubes (compiled core)."""
from .coder import decode, encode

__all__ = ["encode", "decode"]
