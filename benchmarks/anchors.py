"""Reference figures typed from ../shared/PROTOCOL.md, keyed by scene file name.

These were measured by others with the same protocol; they are NOT results of this harness. The
plots show the HINER points as reference markers, and rd.py prints the classical ones next to its
own points so that a reproduction gap is visible at a glance.
"""
from __future__ import annotations

# PROTOCOL.md, "Anchor: the official HINER code, measured with this protocol": (true bpppb,
# true PSNR_band, where it ran). The first table ran on an H100, the second on the 2-core CPU machine.
HINER = {
    "samson.mat": [(0.368, 46.69, "H100"), (0.3716, 46.72, "CPU")],
    "pavia_centre_crop_v73.mat": [(0.444, 48.15, "H100")],
    "houston2018_crop.mat": [(0.479, 41.29, "H100"), (0.536, 42.07, "H100"), (0.4995, 41.98, "CPU")],
}

# PROTOCOL.md, "Anchor: classical codecs, measured with this protocol": (scene, codec, target) ->
# (true bpppb, PSNR_band). SZ3 and the "best" column are left out: rd.py has no SZ3 adapter.
_COLUMNS = ("jpeg2000", "pca-jpeg2000", "pca-x265", "x265")
_TABLE = {
    ("samson.mat", 0.1): ((0.133, 19.86), (0.100, 45.61), (0.100, 45.73), (0.097, 39.21)),
    ("samson.mat", 0.2): ((0.194, 24.49), (0.200, 48.86), (0.196, 49.02), (0.198, 44.54)),
    ("samson.mat", 0.4): ((0.389, 30.64), (0.400, 51.50), (0.390, 51.49), (0.389, 49.45)),
    ("samson.mat", 0.8): ((0.785, 35.09), (0.800, 54.81), (0.790, 54.42), (0.800, 54.35)),
    ("houston2018_crop.mat", 0.1): ((0.098, 18.97), (0.100, 37.87), (0.099, 39.13), (0.097, 34.46)),
    ("houston2018_crop.mat", 0.2): ((0.196, 23.43), (0.200, 43.84), (0.199, 44.58), (0.196, 39.58)),
    ("houston2018_crop.mat", 0.4): ((0.388, 27.43), (0.400, 50.16), (0.391, 50.54), (0.399, 45.59)),
    ("houston2018_crop.mat", 0.8): ((0.787, 31.82), (0.800, 55.86), (0.786, 55.99), (0.776, 52.18)),
    ("pavia_centre_crop_v73.mat", 0.1): ((0.119, 27.86), (0.100, 45.98), (0.093, 45.86), (0.099, 44.03)),
    ("pavia_centre_crop_v73.mat", 0.2): ((0.197, 32.50), (0.200, 47.95), (0.196, 47.94), (0.199, 47.06)),
    ("pavia_centre_crop_v73.mat", 0.4): ((0.396, 38.72), (0.400, 50.08), (0.383, 50.00), (0.395, 49.61)),
    ("pavia_centre_crop_v73.mat", 0.8): ((0.790, 45.02), (0.800, 53.05), (0.771, 52.65), (0.783, 52.77)),
    ("muufl_crop_v73.mat", 0.1): ((0.119, 20.40), (0.099, 36.41), (0.100, 37.68), (0.098, 33.96)),
    ("muufl_crop_v73.mat", 0.2): ((0.196, 23.63), (0.200, 41.73), (0.199, 42.21), (0.196, 38.09)),
    ("muufl_crop_v73.mat", 0.4): ((0.389, 27.21), (0.400, 44.92), (0.390, 44.70), (0.378, 41.49)),
    ("muufl_crop_v73.mat", 0.8): ((0.778, 30.73), (0.800, 47.14), (0.787, 47.25), (0.778, 45.55)),
    ("cave_balloons.h5", 0.1): ((0.100, 49.26), (0.100, 54.95), (0.099, 55.49), (0.100, 54.41)),
    ("cave_balloons.h5", 0.2): ((0.197, 53.31), (0.200, 56.55), (0.190, 56.55), (0.199, 55.99)),
    ("cave_balloons.h5", 0.4): ((0.396, 56.00), (0.399, 58.13), (0.381, 57.44), (0.390, 57.75)),
    ("cave_balloons.h5", 0.8): ((0.780, 58.72), (0.797, 60.47), (0.753, 59.24), (0.764, 60.26)),
}
CLASSICAL = {(scene, codec, target): cell
             for (scene, target), cells in _TABLE.items() for codec, cell in zip(_COLUMNS, cells)}


def hiner_points(scene: str) -> list[tuple[float, float, str]]:
    """HINER reference points (bpppb, PSNR_band, machine) for a scene file name; [] if none."""
    return HINER.get(scene, [])


def classical_point(scene: str, codec: str, target: float) -> tuple[float, float] | None:
    """PROTOCOL.md's (bpppb, PSNR_band) for this scene, codec and rate target, if it has one."""
    return CLASSICAL.get((scene, codec, round(target, 6)))
