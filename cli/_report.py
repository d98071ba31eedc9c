"""Text and JSON views of the dicts that `api.info` and `api.evaluate` return.

The library returns plain dicts (the JSON view is them verbatim); the text view picks the
known fields in a reading order and shows any field it does not know as `key  value`, so a
new field in the library appears without a CLI change.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable

import click
import numpy as np

Row = tuple[str, str]


def jsonable(value: Any) -> Any:
    """numpy scalars/arrays and NaN as JSON has them (NaN -> null, which every parser accepts)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def echo(text: str, err: bool = False) -> None:
    """click.echo, checked: a failed write to stdout (a full disk, /dev/full) is one OutputError line
    (exit 9); a reader that went away (`| head`) stays a BrokenPipeError (exit 141)."""
    try:
        click.echo(text, err=err)
    except BrokenPipeError:
        raise
    except OSError as exc:
        if err:
            raise
        from hinercodec.errors import OutputError

        reason = os.strerror(exc.errno) if exc.errno else (str(exc) or type(exc).__name__)
        raise OutputError(f"writing to stdout failed: {reason}") from None


def print_json(obj: dict, err: bool = False) -> None:
    echo(json.dumps(jsonable(obj), indent=2, sort_keys=True), err=err)


def print_rows(rows: list[Row]) -> None:
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        echo(f"{label:<{width}}  {value}")


LONG_LIST = 8  # longer lists are shown by their ends (or their one value) in text output


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        if len(value) > LONG_LIST:  # one per band, say: a line, not a screenful (all of it with --json)
            if all(v == value[0] for v in value):
                return f"[{_plain(value[0])} x {len(value)}]"
            return f"[{', '.join(_plain(v) for v in value[:3])}, ..., {_plain(value[-1])}] ({len(value)} values)"
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _rows(summary: dict, known: list[tuple[str, tuple[str, ...], Callable[[dict], str]]]) -> list[Row]:
    """Known rows whose fields are present, then every field no known row used."""
    rows, used = [], set()
    for label, keys, show in known:
        if all(k in summary for k in keys):
            rows.append((label, show(summary)))
            used.update(keys)
    rows += [(k, _plain(v)) for k, v in summary.items() if k not in used]
    return rows


def _wavelengths(s: dict) -> str:
    wl = s["wavelength_nm"]
    return "none (bands at evenly spaced positions 0..1)" if not wl else f"{wl[0]:g} .. {wl[-1]:g} nm"


def _metadata(meta: dict) -> str:
    """One line about the sensor metadata (all of it with --json)."""
    parts = [f"from {meta.get('source_format', 'the input')}"]
    bands = meta.get("bands", {})
    for key in ("wavelength", "fwhm", "bbl", "band_names", "gain"):
        if key in bands:
            parts.append(f"{key} x{len(bands[key])}")
    if meta.get("wavelength_units"):
        parts.append(f"wavelength units {meta['wavelength_units']}")
    if meta.get("nodata") is not None:
        parts.append(f"nodata {meta['nodata']}")
    if meta.get("data_units"):
        parts.append(f"data units {meta['data_units']}")
    if meta.get("map_info"):
        parts.append(f"map info {{{meta['map_info']}}}")
    if meta.get("crs_wkt"):
        parts.append("CRS " + meta["crs_wkt"].split('"')[1] if '"' in meta["crs_wkt"] else "CRS (WKT)")
    if meta.get("transform"):
        parts.append("transform " + _plain(meta["transform"]))
    rest = len(meta.get("envi", {})) + len(meta.get("attributes", {})) + len(meta.get("tags", {}).get("dataset", {}))
    if rest:
        parts.append(f"{rest} more fields verbatim (--json)")
    return "; ".join(parts)


INFO_ROWS = [
    ("shape", ("shape", "dtype"), lambda s: " x ".join(map(str, s["shape"])) + f" {s['dtype']}"),
    ("size", ("bytes", "bpppb"), lambda s: f"{s['bytes']} bytes, {s['bpppb']:.4f} bpppb"),
    ("wavelengths", ("wavelength_nm",), _wavelengths),
    ("model", ("model",), lambda s: _plain(s["model"])),
    ("guarantee", ("guarantee",), lambda s: str(s["guarantee"])),
    ("parameters", ("parameters", "bits"),
     lambda s: f"{s['parameters']} ({'/'.join(map(str, s['bits']))}-bit)" if s["parameters"] else "none (no network)"),
    ("nodata", ("nodata",), lambda s: f"{s['nodata']['pixels']} pixels, decoded as {s['nodata']['value']:g}"),
    ("metadata", ("metadata",), lambda s: _metadata(s["metadata"])),
    ("chunks", ("chunks",), lambda s: ", ".join(f"{k} {v}" for k, v in s["chunks"].items()) + " bytes"),
    ("format", ("format_version",), lambda s: f".hnr {s['format_version']}"),
    ("encoder", ("encoder",), lambda s: str(s["encoder"])),
]

EVAL_ROWS = [
    ("bpppb", ("bpppb", "bytes"), lambda s: f"{s['bpppb']:.4f} ({s['bytes']} bytes)"),
    ("PSNR_band", ("psnr_band",), lambda s: f"{s['psnr_band']:.2f} dB"),
    ("PSNR_global", ("psnr_global",), lambda s: f"{s['psnr_global']:.2f} dB"),
    ("SAM", ("sam_deg",), lambda s: f"{s['sam_deg']:.3f} deg"),
    ("max error", ("max_abs_error",), lambda s: f"{s['max_abs_error']:.6g} (largest |decoded - original|, cube units)"),
    ("constant bands", ("constant_bands",),
     lambda s: (", ".join(map(str, s["constant_bands"])) + " (left out of PSNR_band)") if s["constant_bands"]
     else "none"),
]


def info_rows(summary: dict) -> list[Row]:
    return _rows(summary, INFO_ROWS)


def eval_rows(metrics: dict) -> list[Row]:
    return _rows(metrics, EVAL_ROWS)
