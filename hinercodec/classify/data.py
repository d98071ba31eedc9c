"""Label maps and train/test splits for classification, checked before any training starts.

A label map is H x W integers: 0 = unlabelled, every other value a class. The maps come in the
same containers as cubes (.mat v5/v7.3, .h5, .npy, .npz), so they are read through cubeio's format
sniffing; only the choice of variable differs (a 2-D array instead of a 3-D one). Every problem a
user can cause (wrong shape, nothing labelled, a class too small to test) is one InputError line.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from hinercodec.errors import HinercError, InputError
from hinercodec.formats import cubeio

# Variable names tried (case-insensitively, in order) when FILE[:VAR] names no variable.
LABEL_NAMES = ("labels", "label", "gt", "groundtruth", "ground_truth", "classes")
MASK_NAMES = ("train", "train_mask", "mask")


def split_spec(text: str) -> tuple[str, Optional[str]]:
    """'FILE[:VAR]' -> (FILE, VAR or None); a path that exists as given is never split."""
    if os.path.exists(text) or ":" not in text:
        return text, None
    path, var = text.rsplit(":", 1)
    if not path or not var:
        raise InputError(f"{text!r}: expected FILE or FILE:VARIABLE")
    return path, var


def read_map(path: str, var: Optional[str], names: Sequence[str], what: str) -> np.ndarray:
    """The 2-D array `var` of a .mat/.h5/.npy/.npz file, or the one named like `names`, or the only 2-D one."""
    try:
        fmt = cubeio._sniff(path, path)
        with cubeio._variables(path, fmt) as variables:
            chosen = _choose(variables, None if fmt == "npy" else var, names, path, what)
            arr = np.asarray(chosen.load())
            name = chosen.name
    except HinercError:
        raise
    except cubeio._READ_ERRORS as exc:
        raise InputError(f"cannot read {what} from {path}: {cubeio._reason(exc)}") from exc
    if arr.ndim == 3 and arr.shape[2] == 1:  # an H x W x 1 image is a map too
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise InputError(f"{path}: {what} {name!r} is {' x '.join(map(str, arr.shape)) or 'a scalar'}; "
                         "it must be a 2-D H x W map")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{path}: {what} {name!r} is {arr.dtype}, not numbers")
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise InputError(f"{path}: {what} {name!r} must hold whole numbers (found fractions or NaN)")
    return arr


def _choose(variables: dict, var: Optional[str], names: Sequence[str], path: str, what: str):
    if var is not None:
        found = variables.get(var.strip("/"))
        if found is None:
            raise InputError(f"{path} has no variable {var!r}; variables: {cubeio._describe(list(variables.values()))}")
        return found
    usable = [v for v in variables.values() if v.kind == "real" or v.dtype == "bool"]
    by_name = {v.name.rsplit("/", 1)[-1].lower(): v for v in usable}
    for name in names:
        if name in by_name and len(by_name[name].shape) == 2:
            return by_name[name]
    maps = [v for v in usable if len(v.shape) == 2 and min(v.shape) > 1]
    if len(variables) == 1:
        return next(iter(variables.values()))
    if len(maps) == 1:
        return maps[0]
    everything = cubeio._describe(list(variables.values()))
    raise InputError(f"{path}: cannot tell which variable holds the {what}; name it as {path}:VAR "
                     f"(variables: {everything})")


def load_labels(spec: str, shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Read 'FILE[:VAR]' as an int64 H x W label map (0 = unlabelled), checked against the cube's H x W."""
    path, var = split_spec(spec)
    arr = read_map(path, var, LABEL_NAMES, "labels")
    if arr.dtype.kind != "b" and arr.size and arr.min() < 0:
        raise InputError(f"{path}: labels must be >= 0 (0 = unlabelled); found {arr.min():g}")
    labels = arr.astype(np.int64)
    check_labels(labels, shape)
    return labels


def load_mask(spec: str, shape: tuple[int, int]) -> np.ndarray:
    """Read 'FILE[:VAR]' as a boolean H x W training mask (nonzero = a training pixel)."""
    path, var = split_spec(spec)
    mask = read_map(path, var, MASK_NAMES, "training mask") != 0
    if mask.shape != tuple(shape):
        raise InputError(f"the training mask is {mask.shape[0]} x {mask.shape[1]} but the cube is "
                         f"{shape[0]} x {shape[1]}")
    return mask


def check_labels(labels: np.ndarray, shape: Optional[tuple[int, int]] = None) -> None:
    """A 2-D non-negative map of the cube's size with at least one labelled pixel, or InputError."""
    if labels.ndim != 2:
        raise InputError(f"labels must be a 2-D H x W map, not {labels.ndim}-D")
    if shape is not None and labels.shape != tuple(shape):
        raise InputError(f"the labels are {labels.shape[0]} x {labels.shape[1]} but the cube is "
                         f"{shape[0]} x {shape[1]}")
    if labels.min(initial=0) < 0:
        raise InputError("labels must be >= 0 (0 = unlabelled)")
    if not (labels > 0).any():
        raise InputError("the labels hold no labelled pixel (all are 0 = unlabelled)")


def split_per_class(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) boolean masks: `per_class` random pixels of each class for training, the rest for testing.

    A class with per_class or fewer pixels gives all but one to training, so that every class is
    tested; a class with a single labelled pixel cannot be both and is refused.
    """
    check_labels(labels)
    if per_class < 1:
        raise InputError(f"--train-per-class must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed)
    train = np.zeros(labels.shape, dtype=bool)
    flat = labels.reshape(-1)
    for cls in np.unique(flat[flat > 0]):
        where = np.flatnonzero(flat == cls)
        if where.size == 1:
            r, c = divmod(int(where[0]), labels.shape[1])
            raise InputError(f"class {cls} has a single labelled pixel (row {r}, column {c}): it cannot be "
                             "both trained on and tested; relabel it or set it to 0")
        take = rng.choice(where, size=min(per_class, where.size - 1), replace=False)
        train.reshape(-1)[take] = True
    return train, (labels > 0) & ~train


def split_by_mask(labels: np.ndarray, train_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, test): the labelled pixels inside the mask, and the labelled ones outside it."""
    check_labels(labels, train_mask.shape)
    train = train_mask & (labels > 0)
    test = ~train_mask & (labels > 0)
    if not train.any():
        raise InputError("the training mask covers no labelled pixel")
    if not test.any():
        raise InputError("the training mask covers every labelled pixel: none is left to test on")
    missing = np.setdiff1d(np.unique(labels[test]), np.unique(labels[train]))
    if missing.size:
        raise InputError(f"class {', '.join(map(str, missing))} has test pixels but no training pixel in the mask")
    return train, test


def standardise(cube: np.ndarray, stats: Optional[tuple[np.ndarray, np.ndarray]] = None
                ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """C x H x W float32 with zero mean and unit variance per band; `stats` (mean, std) reuses another
    cube's, so that jittered decodes are scaled exactly like the cube they stand in for."""
    x = np.asarray(cube, dtype=np.float64)
    if stats is None:
        std = x.std(axis=(0, 1))
        stats = (x.mean(axis=(0, 1)), np.where(std > 0, std, 1.0))
    mean, std = stats
    return np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1), dtype=np.float32), stats
