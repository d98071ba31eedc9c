"""Rebuild sample_houston.npz, the small real scene shipped with hinerc for `hinerc demo`.

A 64 x 64 x 48 crop (rows 32..95, columns 32..95) of the GRSS DFC 2018 Houston crop in
../shared/data (uint16 sensor units, 380-1050 nm). Run from the repository root:
    python hinercodec/data/make_sample.py ../shared/data/houston2018_crop.mat
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.io


def main(src: str) -> None:
    mat = scipy.io.loadmat(src)
    cube = np.ascontiguousarray(mat["houston"][32:96, 32:96, :])
    wl = mat["wavelength_nm"].astype(np.float32).reshape(-1)
    out = Path(__file__).with_name("sample_houston.npz")
    np.savez_compressed(out, cube=cube, wavelength_nm=wl)
    print(f"{out}: {cube.shape} {cube.dtype}, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/houston2018_crop.mat")
