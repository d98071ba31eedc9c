"""How many size estimates the transform encoder's search makes, and the files it writes.

    python benchmarks/search_cost.py [CUBE...] [--rates 0.1,0.2,0.4,0.8] [--efforts 3,1] [--json OUT]

For every cube, effort and rate, one in-process `api.encode` (the default model), counting the calls
of the coefficient-size estimates every step probe and exact candidate makes
(bitstream.estimate_bits_approx and bitstream.estimate_bits) and the searches the encode ran (more
than one: its first file re-aimed at the budget), with each file's size and SHA-256
(the first 16 hex digits, of the file with its meta chunk's encoder version left out, so that
versions that write the same bytes compare equal). A change to the search that should cost less
and write the same files shows here as fewer estimates and the same hashes; run it before and
after (machine-independent: counts, not times). Default cubes: every scene of ../shared/data
(speed.py's list).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.speed import DATA, SCENES  # noqa: E402
from hinercodec import __version__, api  # noqa: E402
from hinercodec.codecs.transform import bitstream  # noqa: E402
from hinercodec.formats import hnrfile  # noqa: E402
from hinercodec.formats.cubeio import read_cube  # noqa: E402

COUNTED = ("estimate_bits_approx", "estimate_bits")


def counted_encode(cube, rate: float, effort: int) -> tuple[bytes, int, int]:
    """The file of `cube` at `rate` and `effort`, the size estimates its search made and how many
    searches it took (1: the first file kept; 2 or more: re-aimed at the budget)."""
    calls = [0]
    plain = {name: getattr(bitstream, name) for name in COUNTED}

    def counting(fn):
        def call(*args, **kwargs):
            calls[0] += 1
            return fn(*args, **kwargs)
        return call

    for name, fn in plain.items():
        setattr(bitstream, name, counting(fn))
    try:
        result = api.encode(cube.data, cube.wavelengths, bpppb=rate, effort=effort)
    finally:
        for name, fn in plain.items():
            setattr(bitstream, name, fn)
    return result.data, calls[0], int(result.stats.get("attempts", 1))


def versionless_digest(data: bytes) -> str:
    """sha256[:16] of the file with "hinerc" for its meta chunk's "hinerc X.Y.Z" (pack(unpack()) writes
    the same bytes: checked)."""
    f = hnrfile.unpack(data)
    if hnrfile.pack(f) != data:
        raise SystemExit("search_cost: a file does not repack to its own bytes")
    f.meta = {**f.meta, "encoder": "hinerc"}
    return hashlib.sha256(hnrfile.pack(f)).hexdigest()[:16]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cubes", nargs="*", help="cube files (default: the shared scenes)")
    ap.add_argument("--rates", default="0.1,0.2,0.4,0.8")
    ap.add_argument("--efforts", default="3,1")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    paths = [Path(c) for c in args.cubes] or [DATA / s for s in SCENES if (DATA / s).is_file()]
    if not paths:
        print(f"no cubes: {DATA} not found", file=sys.stderr)
        return 2
    rates = [float(r) for r in args.rates.split(",")]
    efforts = [int(e) for e in args.efforts.split(",")]
    rows, totals, searches = [], {e: 0 for e in efforts}, {e: 0 for e in efforts}
    print(f"# hinerc {__version__}: size estimates / searches of each encode (the file's bytes, sha256[:16] without the version)")
    for path in paths:
        cube = read_cube(path)
        for effort in efforts:
            cells = []
            for rate in rates:
                data, n, attempts = counted_encode(cube, rate, effort)
                digest = versionless_digest(data)
                rows.append({"cube": path.name, "effort": effort, "rate": rate, "estimates": n, "searches": attempts,
                             "bytes": len(data), "sha256_16": digest})
                totals[effort] += n
                searches[effort] += attempts
                cells.append(f"{rate}: {n:3d}/{attempts} ({len(data)} B {digest})")
            print(f"{path.name:28s} effort {effort}  " + "  ".join(cells), flush=True)
    print("total estimates: " + ", ".join(f"effort {e}: {t}" for e, t in totals.items()))
    print("total searches: " + ", ".join(f"effort {e}: {t}" for e, t in searches.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"version": __version__, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
