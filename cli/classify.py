"""`hinerc classify`: does a compressed scene still classify like the original?

Thin by design: reading the scene (a .hnr through api.Decoder, or an original cube through cubeio),
the labels and the split are library calls (hinercodec.classify); this module only checks options,
reports progress on stderr and metrics on stdout, and writes the map atomically.
"""
from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Optional

import click
import numpy as np

from hinercodec.cli._progress import ProgressPrinter
from hinercodec.cli._report import print_json, print_rows
from hinercodec.errors import InputError
from hinercodec.formats import cubeio
from hinercodec.formats.container import SIGNATURE

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "show_default": True}
DEFAULT_PER_CLASS = 20
DEFAULT_STEPS = 300
MAP_EXTENSIONS = (".png", ".npy")


def _is_hnr(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SIGNATURE)) == SIGNATURE
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _check_output(path: str, force: bool) -> "cubeio.OutputTarget":
    """A usage error for an unknown extension; then MAP is claimed (its temporary file made beside it,
    removed when the command ends without writing it), so that a missing directory, a read-only file
    system (exit 9) or an existing MAP without --force (6) fails before the scene is read."""
    if Path(path).suffix.lower() not in MAP_EXTENSIONS:
        raise click.BadParameter(f"{path}: unknown extension; use .png (picture with legend) or .npy (label values)",
                                 param_hint="'-o/--output'")
    return click.get_current_context().with_resource(cubeio.claim_output(path, force))


@click.command("classify", context_settings=_CONTEXT,
               short_help="Train a classifier on labelled pixels; print OA/AA/kappa, write the class map.")
@click.argument("scene", metavar="SCENE")
@click.option("--labels", "labels_spec", required=True, metavar="FILE[:VAR]",
              help="Label map H x W (0 = unlabelled): .mat, .h5, .npy or .npz; VAR names the variable.")
@click.option("--train-per-class", type=click.IntRange(min=1), default=None, metavar="N",
              show_default=f"{DEFAULT_PER_CLASS} unless --train-mask",
              help="Random training pixels per class (--seed); the other labelled pixels are the test set.")
@click.option("--train-mask", metavar="FILE[:VAR]",
              help="Training pixels (nonzero); the other labelled pixels are the test set.")
@click.option("--key", metavar="VAR", help="Variable holding the cube when SCENE is a cube file.")
@click.option("--asw/--no-asw", default=None, show_default="on for a .hnr, off for a cube",
              help="Adaptive spectral weighting of the decoded cube, trained with the classifier.")
@click.option("--isi/--no-isi", default=None, show_default="on for a .hnr",
              help="Also train on decodes at wavelengths jittered by up to 0.1 band spacing (a .hnr SCENE only).")
@click.option("--steps", type=click.IntRange(min=1), default=DEFAULT_STEPS, help="Training steps (batches).")
@click.option("--seed", type=int, default=0, help="Seed of the split, the weights and the batches.")
@click.option("-o", "--output", metavar="MAP", show_default="SCENE stem + _classes.png",
              help="Class map: .png (colours and a numbered legend) or .npy (H x W label values).")
@click.option("-f", "--force", is_flag=True, help="Overwrite MAP if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def classify(scene: str, labels_spec: str, train_per_class: Optional[int], train_mask: Optional[str],
             key: Optional[str], asw: Optional[bool], isi: Optional[bool], steps: int, seed: int,
             output: Optional[str], force: bool, quiet: bool, as_json: bool) -> None:
    """Train SpectralFormer on the labelled pixels of SCENE (a .hnr, or an original cube for the
    uncompressed baseline), print OA, AA and kappa on the held-out labelled pixels, and write the
    class map of every pixel.

    \b
    Examples:
      hinerc classify houston.hnr --labels houston.mat:labels
      hinerc classify houston.mat --labels houston.mat:labels --no-asw -o orig.png
      hinerc classify scene.hnr --labels gt.npy --train-mask split.npz:train --json -o map.npy
    """
    started = time.perf_counter()
    if train_per_class is not None and train_mask is not None:
        raise click.UsageError("give --train-per-class or --train-mask, not both")
    if scene == "-":
        raise click.UsageError("SCENE must be a file path (stdin is not supported here)")
    out = output or str(Path(scene).with_name(f"{Path(scene).stem}_classes.png"))
    target = _check_output(out, force)
    hnr = _is_hnr(scene)
    if isi and not hnr:
        raise click.UsageError("--isi decodes SCENE again at jittered wavelengths: it needs a .hnr SCENE")

    from hinercodec import classify as cls
    from hinercodec.api import Decoder, Progress

    decoder = Decoder(cubeio.read_input_bytes(scene)) if hnr else None
    cube = decoder.bands() if decoder is not None else cubeio.read_cube(scene, key=key).data
    labels = cls.load_labels(labels_spec, cube.shape[:2])
    if train_mask is not None:
        train, test = cls.split_by_mask(labels, cls.load_mask(train_mask, cube.shape[:2]))
    else:
        train, test = cls.split_per_class(labels, train_per_class or DEFAULT_PER_CLASS, seed)
    options = cls.TrainOptions(steps=steps, seed=seed, asw=hnr if asw is None else asw,
                               isi=hnr if isi is None else isi)
    printer = None if quiet else ProgressPrinter()
    try:
        result = cls.classify(cube, labels, train, test, options, decoder,
                              None if printer is None else lambda s, n, loss: printer(Progress("train", s, n, loss)))
    finally:
        if printer is not None:
            printer.close()
    classes = sorted(int(c) for c in set(labels[labels > 0].tolist()))
    if Path(out).suffix.lower() == ".png":
        data = cls.class_map_png(result.classmap, classes)
    else:
        buffer = io.BytesIO()
        np.save(buffer, result.classmap, allow_pickle=False)
        data = buffer.getvalue()
    cubeio.atomic_write_bytes(out, data, force=force, target=target)
    summary = {"scene": scene, "source": "hnr" if hnr else "cube", "shape": list(cube.shape), "classes": classes,
               "train_pixels": result.train_pixels, "test_pixels": result.scores["test_pixels"],
               "oa": result.scores["oa"], "aa": result.scores["aa"], "kappa": result.scores["kappa"],
               "per_class": result.scores["per_class"], "asw": options.asw, "isi": options.isi, "seed": seed,
               "steps": steps, "output": out, "seconds": time.perf_counter() - started}
    if as_json:
        print_json(summary)
    else:
        print_rows([("scene", f"{scene} ({summary['source']}, {' x '.join(map(str, cube.shape))})"),
                    ("pixels", f"{summary['train_pixels']} train, {summary['test_pixels']} test, "
                               f"{len(classes)} classes"),
                    ("method", "SpectralFormer" + (" + ASW" if options.asw else "") + (" + ISI" if options.isi else "")),
                    ("OA", f"{100 * summary['oa']:.2f} %"), ("AA", f"{100 * summary['aa']:.2f} %"),
                    ("kappa", f"{summary['kappa']:.4f}"), ("map", out), ("time", f"{summary['seconds']:.1f} s")])
