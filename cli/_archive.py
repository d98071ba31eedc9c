"""`hinerc encode` with many inputs or -O: the archive run (hinercodec.archive) behind the command.

Kept out of cli/main.py so the single-file path stays as it is; this module only turns paths and
a file list into tasks, and records into progress lines on stderr.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Optional, Sequence

import click

from hinercodec.errors import InputError, UsageError

if TYPE_CHECKING:
    from hinercodec.api import EncodeOptions

EXIT_SOME_FAILED = 8  # the run finished, but at least one scene failed (see the manifest)
MANIFEST_NAME = "manifest.jsonl"


def read_file_list(path: str) -> list[str]:
    """One input path per line ('-' = stdin); blank lines and lines starting with '#' are skipped.

    Relative paths are taken from the current directory, as for paths on the command line.
    """
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the file list {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def format_record(record: dict, done: int, total: int) -> str:
    """`[3/10] ok  a.mat -> out/a.hnr  0.1963 bpppb  PSNR_band 38.21 dB  12.3 s  tcp://10.0.0.5:40111`."""
    head = f"[{done}/{total}] {record['status']:<7} {record['input']}"
    if record["status"] == "failed":  # the message names the input already when it is about the input
        error = record["error"]
        return f"{head[:-len(record['input'])]}{error}" if record["input"] in error else f"{head}: {error}"
    if record["status"] == "skipped":
        return f"{head} -> {record['output']}: valid output exists, {record['bpppb']:.4f} bpppb"
    psnr = record["psnr_band"]
    psnr_text = "n/a" if psnr is None else f"{psnr:.2f} dB"
    text = (f"{head} -> {record['output']}  {record['bpppb']:.4f} bpppb  PSNR_band {psnr_text}  "
            f"{record['seconds']:.1f} s on {record['device']} ({record['worker']})")
    return text + (f"  [{record['note']}]" if record.get("note") else "")


def encode_many(inputs: Sequence[str], out_dir: Optional[str], file_list: Optional[str], options: "EncodeOptions",
                *, workers: Optional[int], scheduler: Optional[str], manifest: Optional[str], force: bool,
                quiet: bool, key: Optional[str], wavelengths: object, layout: Optional[str] = None,
                nodata: Optional[float] = None) -> int:
    """Encode every input (and every path of `file_list`); return 0, or EXIT_SOME_FAILED.

    Outputs are OUT_DIR/<stem>.hnr (beside each input without OUT_DIR). The manifest defaults to
    OUT_DIR/manifest.jsonl; without OUT_DIR and --manifest none is written. `wavelengths` is what
    scene.encode_file takes (the command parses --wavelengths first). Progress lines go to stderr
    as scenes finish; --quiet keeps only the lines of failed scenes.
    """
    from hinercodec import archive

    paths = list(inputs) + (read_file_list(file_list) if file_list is not None else [])
    if not paths:
        raise UsageError("no input files: give INPUT paths or --from-list FILE")
    tasks = archive.plan(paths, out_dir)
    if manifest is None and out_dir is not None:
        manifest = os.path.join(out_dir, MANIFEST_NAME)

    def show(record: dict, done: int, total: int) -> None:
        if not quiet or record["status"] == "failed":
            click.echo(format_record(record, done, total), err=True)

    summary = archive.run(tasks, options, key=key, wavelengths=wavelengths, force=force, workers=workers,
                          scheduler=scheduler, manifest=manifest, progress=show, layout=layout, nodata=nodata)
    failed = summary.count("failed")
    if not quiet:
        where = f"; manifest {manifest}" if manifest is not None else ""
        click.echo(f"hinerc: {len(summary.records)} scenes: {summary.count('ok')} encoded, "
                   f"{summary.count('skipped')} skipped (valid output exists), {failed} failed "
                   f"in {summary.seconds:.1f} s{where}", err=True)
    return EXIT_SOME_FAILED if failed else 0
