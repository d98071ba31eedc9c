"""Which torch device a network codec runs on. torch is imported here only when a network asks."""
from __future__ import annotations

from .errors import UsageError


def resolve_device(name: str):
    """'auto' -> first CUDA device when available, else CPU; an unavailable CUDA request -> error."""
    import torch

    if name in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} requested but CUDA is not available here (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"unsupported device {name!r} (use auto, cpu, cuda or cuda:N)")
    return dev
