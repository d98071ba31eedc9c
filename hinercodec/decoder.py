"""`Decoder`: a .hnr file opened once, to decode bands, windows or wavelengths many times.

It reads the container (formats/), finds each model's codec in the registry and asks it for bands
in normalised units (`render(t, rect)`), blends overlapping tiles and restores the cube's units
and dtype. A transform file is decoded with numpy alone; torch is imported only for a network.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Optional, Sequence, Union

import numpy as np

from . import parallel, registry
from .codecs.base import payload_of
from .cube import band_lerp, restore
from .errors import CorruptFileError, RequestError
from .formats import metadata as sensor, tiled
from .formats.hnrfile import HnrFile
from .memory import Spare

Window = tuple[int, int, int, int]  # (y0, y1, x0, x1): rows y0..y1-1, columns x0..x1-1
RENDER_VALUES = 1 << 21  # values (pixels x bands) a tiled strip is rendered in at a time (cheap_windows models)


def open_model(config: dict, tensors: list, height: int, width: int, positions: np.ndarray,
               units: tuple[np.ndarray, np.ndarray], device: str = "cpu", where: str = "",
               payload: Optional[bytes] = None, dtype: Optional[np.dtype] = None,
               valid: Optional[np.ndarray] = None, spare: Optional[Spare] = None,
               coefficients: Optional[tuple] = None):
    """The decoder of one model (a whole file's or a tile's): `.render(t, rect)` -> (K, h, w) in [0, 1].
    CorruptFileError when its configuration and data do not fit together; UnsupportedFileError
    for a model this hinerc does not know. `valid`: the model's part of the file's nodata mask,
    given to a model whose config says its section depends on it ("nodata"); `spare`: memory of
    models let go of, for a model class that takes it (`takes_spare`); `coefficients`: what the
    model's payload codes, as its encoder holds them, for a model class that takes them
    (`takes_coefficients`: the transform decoder builds its images from them, not decoding them)."""
    codec = registry.for_file(config.get("model"))
    cls = registry.decoder_class(codec)
    try:
        if codec.payload:
            extra = {"valid": valid} if config.get("nodata") else {}
            if spare is not None and getattr(cls, "takes_spare", False):
                extra["spare"] = spare
            if coefficients is not None and getattr(cls, "takes_coefficients", False):
                extra["coefficients"] = coefficients
            model = cls(config, payload if payload is not None else payload_of(tensors), positions, units, dtype,
                        **extra)
        else:
            if payload is not None:
                raise ValueError(f"a {codec.name} model stores weights, not a payload")
            model = cls(config, tensors, positions, units, device)
    except ValueError as exc:
        raise CorruptFileError(f"{where}model configuration and data do not match: {exc}") from None
    if (model.height, model.width) != (height, width):
        raise CorruptFileError(f"{where}model output {model.height} x {model.width} does not match "
                               f"{height} x {width}")
    return model


class Decoder:
    """A .hnr file opened once, to decode bands, windows or wavelengths many times.

    `data` is the whole file (validated at once) or a seekable binary stream: a tiled file on a
    stream is read tile by tile, only the tiles a request touches (`tile_reads` counts them).
    `device` matters only for network models (auto: cuda when available). `coefficients`: for the
    encoder's own measure of a file it has just written (hinercodec.tiling, hinercodec.api), the
    coefficients its one model's payload codes (Job.keep), used instead of decoding them.
    """

    _CACHE = 64  # tile models kept between calls
    THREADS = 2  # tile models built at once (numpy codecs)

    def __init__(self, data: Union[bytes, BinaryIO], device: str = "auto", coefficients: Optional[tuple] = None):
        self.device = device
        self._models: dict[int, object] = {}
        self._spare = Spare()  # the memory of tile models let go of, for the next ones
        self.tile_reads = 0
        if isinstance(data, (bytes, bytearray, memoryview)):
            parsed = tiled.read_any(bytes(data))
            if isinstance(parsed, HnrFile):
                self.file, self._tile = parsed, None
            else:
                self.file, tiles = parsed
                self._tile = tiles.__getitem__
        else:
            opened = tiled.open_stream(data)
            if isinstance(opened, HnrFile):
                self.file, self._tile = opened, None
            else:
                self.file, self._tile = opened.head, opened.tile
        f = self.file
        # Sensor metadata (`smta`) and the valid-pixel mask (`mask`): ancillary, None when absent.
        self.metadata, self.valid = sensor.read_extra(data, f.height, f.width)
        self.nodata = sensor.nodata_value(self.metadata)
        self.grid = f.grid if self._tile is not None else tiled.TileGrid((0, f.height), (0, f.width))
        if self._tile is None:
            self._models[0] = open_model(f.model_config, f.tensors, f.height, f.width, f.band_positions(),
                                         (f.band_offset, f.band_scale), device, payload=f.payload, dtype=f.dtype,
                                         valid=self.valid, coefficients=coefficients)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.file.shape

    @property
    def dtype(self) -> np.dtype:
        return self.file.dtype

    @property
    def wavelengths(self) -> Optional[np.ndarray]:
        return self.file.wavelengths

    @property
    def tiled(self) -> bool:
        return self._tile is not None

    def forget(self, keep: Sequence[int] = ()) -> None:
        """Let go of the cached tile models but `keep` (the memory of a walk over a large file)."""
        for i in set(self._models) - set(keep) if self._tile is not None else ():
            self._drop(i)

    def _drop(self, i: int) -> None:
        """Let go of tile model i (if cached), its memory kept for the next model built."""
        model = self._models.pop(i, None)
        if model is not None and hasattr(model, "release"):
            self._spare.give(model.release())

    def _model(self, i: int):
        self._load([i])
        return self._models[i]

    def _load(self, indices: Sequence[int]) -> None:
        """Open the models of these tiles that are not cached: the tiles read one after the other
        (a stream is read in order), the models of numpy codecs built in THREADS threads (their
        compiled steps release the GIL; each model is the same whatever thread builds it)."""
        todo = [i for i in dict.fromkeys(indices) if i not in self._models]
        if not todo:
            return
        jobs = []
        for i in todo:
            y0, y1, x0, x1 = self.grid.fit_rect(i)
            tile = self._tile(i)
            self.tile_reads += 1
            jobs.append((tile.model_config, tile.tensors, y1 - y0, x1 - x0, self.file.band_positions(),
                         (self.file.band_offset, self.file.band_scale), self.device, f"tile {i}: ", None,
                         self.file.dtype, None if self.valid is None else self.valid[y0:y1, x0:x1], self._spare))
        numpy_only = all(registry.for_file(job[0].get("model")).payload for job in jobs)
        if len(jobs) > 1 and numpy_only and self.THREADS > 1:
            workers = min(self.THREADS, len(jobs))
            build = parallel.run_limited(lambda job: open_model(*job), parallel.share(workers))
            with ThreadPoolExecutor(workers) as pool:  # each worker's compiled steps get its share of the cores
                models = list(pool.map(build, jobs))
        else:
            models = [open_model(*job) for job in jobs]
        # what these models did not take, but the memory their coefficients were decoded in and
        # their inverse wavelet's work memory (as many as models are built at once): the next
        # row's models use it
        self._spare.clear(keep=(np.int64, np.float64), most=self.THREADS)
        for i, model in zip(todo, models):
            while len(self._models) >= self._CACHE:
                self._drop(next(iter(self._models)))
            self._models[i] = model

    def _window(self, window: Optional[Window]) -> Window:
        h, w = self.file.height, self.file.width
        if window is None:
            return (0, h, 0, w)
        y0, y1, x0, x1 = (int(v) for v in window)
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise RequestError(f"window rows {y0}:{y1}, columns {x0}:{x1} is not inside the "
                               f"{h} x {w} image (rows 0:{h}, columns 0:{w})")
        return y0, y1, x0, x1

    def _render(self, t: np.ndarray, offset: np.ndarray, scale: np.ndarray, window: Optional[Window],
                out: Optional[np.ndarray] = None) -> np.ndarray:
        y0, y1, x0, x1 = self._window(window)
        if self._tile is None and hasattr(self._models[0], "render_units"):  # values in the cube's units
            return self._nodata(self._models[0].render_units(t, (y0, y1, x0, x1)), (y0, y1, x0, x1))
        shape = (y1 - y0, x1 - x0, len(t))
        if out is not None and (out.shape != shape or out.dtype != self.file.dtype or not out.flags.c_contiguous
                                or not out.flags.writeable):
            raise ValueError(f"out must be a writeable C-contiguous {shape} array of {self.file.dtype}")
        out = np.empty(shape, dtype=self.file.dtype) if out is None else out
        edges = self.grid.y_edges
        cached = set(self._models)
        strips = [(max(y0, edges[r]), min(y1, edges[r + 1])) for r in range(len(edges) - 1)]
        strips = [(s0, s1) for s0, s1 in strips if s0 < s1]
        # A row of tiles at a time: the float temporaries stay the size of one strip, not the image
        # (a network whose reach crosses into the next strip runs again there), and the models this
        # request opened for a strip are let go once no later strip touches them (memory: a row of
        # tiles, not the image; the last strip's stay cached for the next request).
        for n, (s0, s1) in enumerate(strips):
            self._load(self.grid.touching(s0, s1, x0, x1))
            # models that render any window at the cost of its pixels alone (the transform model's
            # mix) go by bands of rows: temporaries of a few MB, the same memory again for every band
            # (fresh memory for each strip-size temporary was most of a large decode's time)
            cheap = all(getattr(self._models[i], "cheap_windows", False) for i in self.grid.touching(s0, s1, x0, x1))
            rows = max(1, RENDER_VALUES // max(1, (x1 - x0) * len(t))) if cheap else s1 - s0
            for r0 in range(s0, s1, rows):
                r1 = min(s1, r0 + rows)
                rows_out = out[r0 - y0:r1 - y0]
                done = restore(self._blend(t, (r0, r1, x0, x1)), offset, scale, self.file.dtype, rows_out)
                if done is not rows_out:  # the compiled path writes into `out` itself
                    rows_out[...] = done
            if n + 1 < len(strips):
                later = set(self.grid.touching(strips[n + 1][0], y1, x0, x1))
                for i in set(self.grid.touching(s0, s1, x0, x1)) - later - cached:
                    self._drop(i)
        return self._nodata(out, (y0, y1, x0, x1))

    def _nodata(self, out: np.ndarray, window: Window) -> np.ndarray:
        """Nodata pixels (the file's mask) set to exactly the nodata value."""
        if self.valid is None:
            return out
        y0, y1, x0, x1 = window
        invalid = ~self.valid[y0:y1, x0:x1]
        if invalid.any():
            if not out.flags.writeable:
                out = out.copy()
            value = self.nodata if self.nodata is not None else 0.0
            out[invalid] = np.asarray(value).astype(out.dtype) if out.dtype.kind == "f" or value == value else 0
        return out

    def _blend(self, t: np.ndarray, window: Window) -> np.ndarray:
        """(K, h, w) model outputs in [0, 1] over the window, overlapping tiles blended."""
        y0, y1, x0, x1 = window
        touching = self.grid.touching(y0, y1, x0, x1)
        if self.grid.overlap == 0:  # tiles side by side: each pixel from one model alone, as that model made it
            out = None
            for i in touching:
                ty0, ty1, tx0, tx1 = self.grid.fit_rect(i)
                a0, a1, b0, b1 = max(y0, ty0), min(y1, ty1), max(x0, tx0), min(x1, tx1)
                y = self._model(i).render(t, (a0 - ty0, a1 - ty0, b0 - tx0, b1 - tx0))
                if len(touching) == 1:
                    return y  # one model covers the window alone
                if out is None:
                    out = np.empty((len(t), y1 - y0, x1 - x0), y.dtype)
                out[:, a0 - y0:a1 - y0, b0 - x0:b1 - x0] = y
            return out
        acc = np.zeros((len(t), y1 - y0, x1 - x0), np.float32)
        for i in touching:
            ty0, ty1, tx0, tx1 = self.grid.fit_rect(i)
            a0, a1, b0, b1 = max(y0, ty0), min(y1, ty1), max(x0, tx0), min(x1, tx1)
            wy, wx = self.grid.weights(i)
            weight = np.outer(wy[a0 - ty0:a1 - ty0], wx[b0 - tx0:b1 - tx0]).astype(np.float32)
            y = self._model(i).render(t, (a0 - ty0, a1 - ty0, b0 - tx0, b1 - tx0))
            y *= weight  # in place (the model's fresh output): the same products as weight * y
            acc[:, a0 - y0:a1 - y0, b0 - x0:b1 - x0] += y
        return acc

    def bands(self, bands: Optional[Sequence[int]] = None, window: Optional[Window] = None,
              out: Optional[np.ndarray] = None) -> np.ndarray:
        """The coded bands (all, or the listed 0-based ones in that order) of the whole image or a
        window: H x W x K in the original dtype. `out`: a writeable C-contiguous array of that shape
        and dtype to decode into, where the decode goes by strips (a tiled file; else ignored): a
        caller decoding strip after strip need not touch fresh memory for each."""
        f = self.file
        idx = np.arange(f.bands) if bands is None else np.asarray(list(bands), dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= f.bands):
            bad = int(idx[(idx < 0) | (idx >= f.bands)][0])
            raise RequestError(f"band {bad} is out of range: the file has bands 0..{f.bands - 1}")
        return self._render(f.band_positions()[idx], f.band_offset[idx], f.band_scale[idx], window, out)

    def at(self, t: Sequence[float], window: Optional[Window] = None) -> np.ndarray:
        """Bands at normalised wavelengths t in [0, 1]: H x W x K, original dtype.

        Offset and scale are interpolated linearly between the neighbouring coded bands.
        """
        t = np.asarray(list(t), dtype=np.float64).reshape(-1)
        bad = t[(t < 0) | (t > 1) | ~np.isfinite(t)]
        if bad.size:
            raise RequestError(f"normalised wavelength {bad[0]:g} is outside [0, 1]")
        if t.size == 0:
            raise RequestError("no wavelength asked for")
        f = self.file
        pos = f.band_positions()
        order = np.argsort(pos)
        p, o, s = pos[order], f.band_offset.astype(np.float64)[order], f.band_scale.astype(np.float64)[order]
        offset = np.array([band_lerp(float(v), p, o) for v in t])
        scale = np.array([band_lerp(float(v), p, s) for v in t])
        return self._render(t, offset, scale, window)

    def nm_to_t(self, nm: Sequence[float]) -> np.ndarray:
        """Wavelengths in nm -> normalised positions (RequestError outside the file's range)."""
        f = self.file
        if f.wavelengths is None:
            raise RequestError("this file has no wavelengths in nm (its input had none): use --lambda in [0, 1]")
        req = np.asarray(list(nm), dtype=np.float64)
        lo, hi = float(np.min(f.wavelengths)), float(np.max(f.wavelengths))
        bad = req[(req < lo) | (req > hi) | ~np.isfinite(req)]
        if bad.size:
            raise RequestError(f"wavelength {bad[0]:g} nm is outside the file's range {lo:g}..{hi:g} nm")
        wl = np.asarray(f.wavelengths, dtype=np.float64)
        return (req - wl[0]) / (wl[-1] - wl[0]) if f.bands > 1 else np.zeros_like(req)
