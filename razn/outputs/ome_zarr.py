"""OME-Zarr (NGFF) label images: the class map and the zoom map, as multiscale pyramids.

Layout. Each output is a **standalone label image**: the root group of
``labels.ome.zarr`` (classes) or ``zoom_levels.ome.zarr`` (zoom map) carries
``multiscales`` and ``image-label`` itself, with the levels in ``0``, ``1``, … . razn
does not own the slide's pixels (they stay in the vendor file), so an NGFF *image*
group around the labels would either copy the whole RGB pyramid or hold a fake image.
A standalone label image opens as it is: napari (napari-ome-zarr) shows it as a labels
layer with its colours, QuPath and other NGFF image readers show it as a one-channel
uint8 image, and ``ome_zarr.reader`` reads it as a ``Label`` node. ``image-label.source``
names a parent image, so it is written only when the caller nests the label image in
an image group's ``labels/<name>/`` and passes ``source_image`` (``"../../"`` there).

Format. NGFF 0.4 on zarr format 2 (``/`` chunk separator, Blosc-zstd) by default: what
QuPath, napari and TIAToolbox read today. NGFF 0.5 on zarr format 3 (metadata under
``attributes.ome``, ``dimension_names`` y, x) on request.

Geometry. Axes ``y``, ``x`` of type ``space``. Level ``k`` has ``ceil(n / 2**k)``
pixels per side and a ``scale`` of ``mpp × output_downsample × 2**k`` micrometre per
pixel (``mpp`` is ``(x, y)``, the transform is ``[y, x]``). Without an mpp the axes have
no unit and the scale is in level-0 pixels (``output_downsample × 2**k``). Pixel
``(i, j)`` of level ``k`` covers level-0 pixels ``[j·s, (j+1)·s) × [i·s, (i+1)·s)``
with ``s = output_downsample × 2**k`` (all levels share their top-left corner). Like
ome-zarr-py's own writer, no translation is written, so a viewer that puts pixel
centres at ``index × scale`` shows a coarse level shifted by under one of its pixels.
Levels halve until the longest side is at most 512 px (a thumbnail).

Downsampling is the **mode** of each 2×2 block (ties go to the value that comes first
in raster order, so with four different values it is the top-left pixel): labels are
never interpolated, and a class holding most of a block keeps it. Level 0 is read in
square tiles of at most ``WINDOW_PIXELS`` pixels, and the levels below it of which a tile
holds whole chunks are downsampled from the tile in memory; the rest are built from the
level above, tile by tile. So memory does not grow with the slide, and each chunk is
encoded and stored once, straight to its file (zarr's own writes cost some 3× the
encoding), with chunks of one value equal to the fill left unstored. A 100,000² class map
(chunks of 1024², about 6,400 files) took 22 s; the zoom map of the same slide 16 s.
The root attributes also carry ``razn`` (output downsample, mpp, content) for razn's
own readers; NGFF readers ignore it.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from numcodecs import Blosc, Zstd
from zarr.codecs import ZstdCodec

from razn.errors import RaznError
from razn.outputs.overlay import CLASS_COLOURS, level_colours
from razn.slide.levels import level_size

NgffVersion = Literal["0.4", "0.5"]
Colour = Sequence[int]
Window = tuple[int, int, int, int]  # y0, y1, x0, x1 in pixels of one level
Reader = Callable[[Window], np.ndarray]

CHUNK = 1024
THUMBNAIL_SIDE = 512
WINDOW_PIXELS = 1 << 24  # 16 Mpx tiles: 4096² at level 0, whole chunks down to level 2
STORE_THREADS = 4  # chunks encoded and stored at once
NOT_DECIDED = 255  # zoom map value where no break decision covers a pixel
_EPS = 1e-7


def class_colours(
    count: int, colours: Sequence[Colour] | None = None
) -> list[tuple[int, int, int]]:
    """``count`` RGB colours (0–255), one per class value: ``colours`` or razn's palette.

    The default matches ``overlay.png``; classes past its end get evenly spread hues.
    """
    if colours is not None:
        if len(colours) < count:
            raise RaznError(
                f"{count} class names but only {len(colours)} colours; give one per class"
            )
        return [_rgb(c) for c in colours[:count]]
    out = [_rgb(c) for c in CLASS_COLOURS[:count].astype(int).tolist()]
    for k in range(len(out), count):
        hue = (k * 0.618033988749895) % 1.0
        out.append(_rgb(round(255 * _hue_channel(hue, s)) for s in (0.0, 2 / 3, 1 / 3)))
    return out


def write_label_image(
    path: str | Path,
    labels: Any,
    output_downsample: float,
    mpp: Sequence[float] | None,
    class_names: Sequence[str],
    colours: Sequence[Colour] | None = None,
    version: NgffVersion = "0.4",
    *,
    chunk: int = CHUNK,
    source_image: str | None = None,
) -> Path:
    """Write the class map ``labels`` (``[y, x]`` integers at ``output_downsample``) as an
    OME-Zarr label image at ``path`` (replaced if it exists).

    Args:
        labels: a numpy or zarr array; read one window at a time, never whole.
        output_downsample: level-0 pixels per label pixel.
        mpp: ``(x, y)`` micrometres per level-0 pixel, or None (then scales are in
            level-0 pixels and the axes have no unit).
        class_names: one name per label value, background (0) first.
        colours: RGB per label value; razn's palette by default. 0 is transparent.
        version: NGFF ``"0.4"`` (zarr format 2) or ``"0.5"`` (zarr format 3).
        chunk: chunk side of every level, in pixels.
        source_image: relative path to a parent NGFF image, when nested in one.
    """
    if len(labels.shape) != 2:
        raise RaznError(f"labels must be 2-D [y, x], got shape {tuple(labels.shape)}", path)
    rgb = class_colours(len(class_names), colours)
    entries = [
        (value, name, (*rgb[value], 0 if value == 0 else 255))
        for value, name in enumerate(class_names)
    ]

    def read(window: Window) -> np.ndarray:
        y0, y1, x0, x1 = window
        return _as_uint8(np.asarray(labels[y0:y1, x0:x1]), path)

    meta = _Meta(
        output_downsample, mpp, version, chunk, fill=0,
        image_label=_image_label(entries, version, source_image),
        razn={"content": "classes", "class_names": list(class_names)},
    )  # fmt: skip
    return _write(path, (labels.shape[0], labels.shape[1]), read, meta)


def write_level_map(
    path: str | Path,
    decisions: Iterable[Sequence[Any]],
    dimensions: tuple[int, int],
    output_downsample: float,
    patch_size: int,
    working_downsamples: Sequence[float],
    mpp: Sequence[float] | None,
    version: NgffVersion = "0.4",
    *,
    chunk: int = CHUNK,
    source_image: str | None = None,
) -> Path:
    """Write the zoom map: the working level (0 = coarsest) at which each pixel was
    decided, ``NOT_DECIDED`` (255) elsewhere, with the geometry of the class map.

    Args:
        decisions: rows ``(level, col, row, x, y, action, …)`` as in ``decisions.csv``
            (see :func:`read_decisions`); only ``break`` rows are painted, each over the
            level-0 square ``[x, x + e) × [y, y + e)`` with ``e = patch_size ×
            working_downsamples[level]``. A pixel belongs to a square when its centre
            does. Break rows are kept as compact arrays (24 bytes each).
        dimensions: the slide's level-0 ``(w, h)``.
        Other arguments as in :func:`write_label_image`.
    """
    extents = [patch_size * d for d in working_downsamples]
    if len(extents) >= NOT_DECIDED:
        raise RaznError(f"{len(extents)} working levels do not fit the zoom map's uint8", path)
    squares = _break_squares(decisions, extents, output_downsample)
    width, height = level_size(dimensions, output_downsample)
    rgb = level_colours(len(working_downsamples)).round().astype(int).tolist()
    entries = [
        (k, f"level {k} (downsample {d:g})", (*rgb[min(k, len(rgb) - 1)], 255))
        for k, d in enumerate(working_downsamples)
    ]
    entries.append((NOT_DECIDED, "not decided", (0, 0, 0, 0)))
    meta = _Meta(
        output_downsample, mpp, version, chunk, fill=NOT_DECIDED,
        image_label=_image_label(entries, version, source_image),
        razn={"content": "zoom_levels", "working_downsamples": [float(d) for d in working_downsamples]},
    )  # fmt: skip
    return _write(path, (height, width), squares.paint, meta)


def read_decisions(path: str | Path) -> Iterator[tuple[int, int, int, int, int, str, float]]:
    """Stream the rows of a ``decisions.csv`` as typed tuples (level-0 ``x, y``)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            yield (
                int(row["level"]), int(row["col"]), int(row["row"]), int(row["x"]),
                int(row["y"]), row["action"], float(row["zoom_probability"]),
            )  # fmt: skip


def mode_downsample(block: np.ndarray) -> np.ndarray:
    """The mode of every 2×2 block of ``block`` (``ceil(h/2) × ceil(w/2)``).

    Ties go to the value first in raster order (top-left, top-right, bottom-left,
    bottom-right); an odd last row or column is a block of its real pixels only.
    """
    if block.size and block.min() == block.max():  # one class (glass, a lesion): no vote
        return np.full(((block.shape[0] + 1) // 2, (block.shape[1] + 1) // 2), block.flat[0])
    if block.shape[0] % 2 or block.shape[1] % 2:
        block = np.pad(block, ((0, block.shape[0] % 2), (0, block.shape[1] % 2)), mode="edge")
    a, b = block[0::2, 0::2], block[0::2, 1::2]
    c, d = block[1::2, 0::2], block[1::2, 1::2]
    out = a.copy()
    # Class maps are piecewise constant: most 2×2 blocks are one value and keep it, so the
    # vote runs only where a block is mixed.
    mixed = np.nonzero((a != b) | (a != c) | (a != d))
    if mixed[0].size:
        out[mixed] = _vote(a[mixed], b[mixed], c[mixed], d[mixed])
    return out


def _vote(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Element-wise mode of four equal-shape arrays; ties to the first of a, b, c, d."""
    ab, ac, ad, bc, bd, cd = a == b, a == c, a == d, b == c, b == d, c == d
    out, best = a.copy(), ab.astype(np.uint8) + ac + ad
    for value, count in ((b, ab.astype(np.uint8) + bc + bd), (c, ac.astype(np.uint8) + bc + cd),
                         (d, ad.astype(np.uint8) + bd + cd)):  # fmt: skip
        better = count > best
        out[better] = value[better]
        np.maximum(best, count, out=best)
    return out


def pyramid_shapes(
    shape: tuple[int, int], thumbnail_side: int = THUMBNAIL_SIDE
) -> list[tuple[int, int]]:
    """``(h, w)`` of every level: halved (rounding up) until the longest side fits."""
    shapes = [(int(shape[0]), int(shape[1]))]
    while max(shapes[-1]) > thumbnail_side:
        h, w = shapes[-1]
        shapes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return shapes


@dataclass(frozen=True)
class _Meta:
    """How to store a pyramid and what to say about it (see :func:`write_label_image`)."""

    output_downsample: float
    mpp: Sequence[float] | None
    version: NgffVersion
    chunk: int
    fill: int
    image_label: dict[str, Any]
    razn: dict[str, Any]


def _write(path: str | Path, shape: tuple[int, int], read: Reader, meta: _Meta) -> Path:
    """Write the pyramid (:func:`_write_levels`) and its NGFF and razn metadata."""
    if meta.version not in ("0.4", "0.5"):
        raise RaznError(f"NGFF version must be '0.4' or '0.5', got {meta.version!r}", path)
    path = Path(path)
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if meta.version == "0.4" else 3)
    shapes = pyramid_shapes(shape)
    with ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="razn-ome-zarr") as threads:
        levels = [
            _LevelWriter(_create_level(group, str(k), s, meta), meta, threads)
            for k, s in enumerate(shapes)
        ]
        _write_levels(levels, shapes, read, meta)
    name = path.name.removesuffix(".zarr").removesuffix(".ome")
    ome: dict[str, Any] = {
        "multiscales": [_multiscale(name, len(shapes), meta)],
        "image-label": meta.image_label,
    }
    group.attrs.update({"ome": {"version": "0.5", **ome}} if meta.version == "0.5" else ome)
    mpp = None if meta.mpp is None else [float(m) for m in meta.mpp]
    group.attrs["razn"] = {
        **meta.razn,
        "output_downsample": float(meta.output_downsample),
        "mpp": mpp,
    }
    return path


def _write_levels(
    levels: Sequence[_LevelWriter], shapes: Sequence[tuple[int, int]], read: Reader, meta: _Meta
) -> None:
    """Level 0 from ``read``, tile by tile, with the levels a tile holds whole chunks of
    built from it in memory; then each further level from the one above."""
    tile = _tile_side(meta.chunk)
    in_memory = min(int(math.log2(tile // meta.chunk)), len(shapes) - 1)
    for window in _tiles(shapes[0], tile):
        block = read(window)
        for k in range(in_memory + 1):
            levels[k].write(_halved(window, k, shapes[k]), block)
            if k < in_memory:  # each tile-built level is whole chunks: tile = chunk · 2**k
                block = mode_downsample(block)
    for k in range(in_memory + 1, len(shapes)):
        above = levels[k - 1]
        source = _halving_reader(above.array, above.written, meta.chunk, meta.fill)
        for window in _tiles(shapes[k], tile):
            levels[k].write(window, source(window))


def _create_level(group: Any, name: str, shape: tuple[int, int], meta: _Meta) -> Any:
    chunks = (min(meta.chunk, shape[0]), min(meta.chunk, shape[1]))
    common = {"shape": shape, "chunks": chunks, "dtype": "uint8", "fill_value": meta.fill}
    if meta.version == "0.5":
        return group.create_array(
            name, **common, compressors=ZstdCodec(level=0, checksum=False),
            dimension_names=("y", "x"),
        )  # fmt: skip
    return group.create_array(
        name, **common, compressors=_BLOSC_ZSTD,
        chunk_key_encoding={"name": "v2", "separator": "/"},  # NGFF 0.4 wants "/"
    )  # fmt: skip


_BLOSC_ZSTD = Blosc(cname="zstd", clevel=5, shuffle=Blosc.NOSHUFFLE)
"""NGFF 0.4's codec: Blosc is what every zarr-2 reader (QuPath's included) decodes."""


class _LevelWriter:
    """Writes whole chunks of one level straight to their files, encoded as the array's
    metadata says (:func:`_create_level`), and skips chunks that are all fill.

    zarr's own ``__setitem__`` costs about 2 ms per 512² chunk in its async pipeline, some
    3× the encoding itself; this writer is what makes a 100,000² map take seconds, not
    minutes. Reads go through zarr as usual, so the layout is checked by every read-back.
    """

    def __init__(self, array: Any, meta: _Meta, threads: ThreadPoolExecutor) -> None:
        self.array = array
        # Encoding and creating files wait on the codec and the file system, not Python:
        # threads overlap them (creating a file costs ~1 ms on some file systems).
        self._threads = threads
        self.fill = meta.fill
        self.chunks: tuple[int, int] = array.chunks
        self.written = np.zeros(
            tuple(-(-n // c) for n, c in zip(array.shape, self.chunks, strict=True)), bool
        )
        self._codec = _BLOSC_ZSTD if meta.version == "0.4" else Zstd(level=0)
        self._folder = Path(array.store.root) / array.path
        self._key_prefix = () if meta.version == "0.4" else ("c",)  # v2 "i/j", v3 "c/i/j"
        self._made: set[Path] = set()

    def write(self, window: Window, block: np.ndarray) -> None:
        """Write ``block`` at ``window``, whose origin lies on the chunk grid and whose end
        is a chunk boundary or the array's edge."""
        y0, y1, x0, x1 = window
        cy, cx = self.chunks
        jobs = []
        for i in range(0, y1 - y0, cy):
            for j in range(0, x1 - x0, cx):
                part = block[i : i + cy, j : j + cx]
                if part.min() == part.max() == self.fill:
                    continue  # read back as fill anyway
                if part.shape != (cy, cx):  # an edge chunk is stored whole, padded with fill
                    full = np.full((cy, cx), self.fill, np.uint8)
                    full[: part.shape[0], : part.shape[1]] = part
                    part = full
                row, col = (y0 + i) // cy, (x0 + j) // cx
                self.written[row, col] = True
                jobs.append(((row, col), np.ascontiguousarray(part)))
        for done in [self._threads.submit(self._store, index, chunk) for index, chunk in jobs]:
            done.result()  # raises what a thread raised

    def _store(self, index: tuple[int, int], chunk: np.ndarray) -> None:
        folder = self._folder.joinpath(*self._key_prefix, str(index[0]))
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        (folder / str(index[1])).write_bytes(self._codec.encode(chunk))


def _tile_side(chunk: int) -> int:
    """The largest ``chunk · 2**k`` whose square fits ``WINDOW_PIXELS`` (at least ``chunk``)."""
    side = chunk
    while (2 * side) ** 2 <= WINDOW_PIXELS:
        side *= 2
    return side


def _tiles(shape: tuple[int, int], side: int) -> Iterator[Window]:
    """Square windows of ``side`` px in raster order (cut at the edges)."""
    height, width = shape
    for y0 in range(0, height, side):
        for x0 in range(0, width, side):
            yield y0, min(y0 + side, height), x0, min(x0 + side, width)


def _halved(window: Window, k: int, shape: tuple[int, int]) -> Window:
    """``window`` of level 0 as the window it becomes at level ``k`` (``shape``)."""
    y0, y1, x0, x1 = window
    return y0 >> k, min(-(-y1 >> k), shape[0]), x0 >> k, min(-(-x1 >> k), shape[1])


def _halving_reader(previous: Any, written: np.ndarray, chunk: int, fill: int) -> Reader:
    """Reads a window of the next level by mode-downsampling ``previous``; a window over
    none of ``previous``'s ``written`` chunks (a bool grid, ``chunk`` px each) is ``fill``
    without reading (zarr is slow to fill in missing chunks)."""

    def read(window: Window) -> np.ndarray:
        y0, y1, x0, x1 = window
        rows = slice(2 * y0 // chunk, -(-2 * y1 // chunk))
        cols = slice(2 * x0 // chunk, -(-2 * x1 // chunk))
        if not written[rows, cols].any():
            return np.full((y1 - y0, x1 - x0), fill, np.uint8)
        return mode_downsample(np.asarray(previous[2 * y0 : 2 * y1, 2 * x0 : 2 * x1]))

    return read


def _multiscale(name: str, levels: int, meta: _Meta) -> dict[str, Any]:
    mpp, output_downsample = meta.mpp, meta.output_downsample
    unit = {} if mpp is None else {"unit": "micrometer"}
    axes = [{"name": axis, "type": "space", **unit} for axis in ("y", "x")]
    per_px = (1.0, 1.0) if mpp is None else (float(mpp[1]), float(mpp[0]))  # (y, x)
    datasets = [
        {"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": [s * output_downsample * 2**k for s in per_px]}]}
        for k in range(levels)
    ]  # fmt: skip
    multiscale: dict[str, Any] = {"name": name, "axes": axes, "datasets": datasets, "type": "mode"}
    multiscale["metadata"] = {
        "description": "2x2 mode per level (ties: first in raster order); never interpolated",
        "method": "razn.outputs.ome_zarr.mode_downsample",
    }
    if meta.version == "0.4":
        multiscale["version"] = "0.4"
    return multiscale


def _image_label(
    entries: Sequence[tuple[int, str, tuple[int, ...]]],
    version: NgffVersion,
    source_image: str | None,
) -> dict[str, Any]:
    label: dict[str, Any] = {
        "colors": [{"label-value": v, "rgba": list(rgba)} for v, _, rgba in entries],
        "properties": [{"label-value": v, "name": name} for v, name, _ in entries],
    }
    if source_image is not None:
        label["source"] = {"image": source_image}
    if version == "0.4":
        label["version"] = "0.4"
    return label


@dataclass(frozen=True)
class _Squares:
    """Break squares in output pixels ``[y0, y1) × [x0, x1)``, sorted by ``y0``."""

    level: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    x0: np.ndarray
    x1: np.ndarray
    tallest: int  # the most rows one square spans, to find those reaching into a window

    def paint(self, window: Window) -> np.ndarray:
        """The zoom map in ``window``; coarse levels first, so a finer break wins an overlap."""
        wy0, wy1, wx0, wx1 = window
        out = np.full((wy1 - wy0, wx1 - wx0), NOT_DECIDED, np.uint8)
        band = np.arange(*np.searchsorted(self.y0, [wy0 - self.tallest, wy1]))
        band = band[(self.y1[band] > wy0) & (self.x0[band] < wx1) & (self.x1[band] > wx0)]
        band = band[np.argsort(self.level[band], kind="stable")]
        rows = np.stack(
            [self.level[band], self.y0[band], self.y1[band], self.x0[band], self.x1[band]], 1
        )
        for level, y0, y1, x0, x1 in rows.tolist():
            out[max(y0 - wy0, 0) : y1 - wy0, max(x0 - wx0, 0) : x1 - wx0] = level
        return out


def _break_squares(
    decisions: Iterable[Sequence[Any]], extents: Sequence[float], downsample: float
) -> _Squares:
    """The break rows' squares; a pixel belongs to a square when its centre does."""
    levels, xs, ys = array("q"), array("q"), array("q")  # 24 bytes a break, no objects
    for row in decisions:
        if row[5] == "break":
            levels.append(int(row[0]))
            xs.append(int(row[3]))
            ys.append(int(row[4]))
    level = np.frombuffer(levels, np.int64) if levels else np.zeros(0, np.int64)
    if level.size and (level.min() < 0 or level.max() >= len(extents)):
        raise RaznError(
            f"decision levels must lie in 0..{len(extents) - 1}, got {level.min()}..{level.max()}"
        )
    ext = np.asarray(extents, np.float64)[level]
    x, y = np.frombuffer(xs, np.int64), np.frombuffer(ys, np.int64)
    y0 = _first_pixel(y, downsample)
    order = np.argsort(y0, kind="stable")
    y0, y1 = y0[order], _first_pixel(y + ext, downsample)[order]
    x0, x1 = _first_pixel(x, downsample)[order], _first_pixel(x + ext, downsample)[order]
    tallest = int(np.max(y1 - y0, initial=0))
    return _Squares(level[order].astype(np.uint8), y0, y1, x0, x1, tallest)


def _first_pixel(coordinate: np.ndarray, downsample: float) -> np.ndarray:
    """The first output pixel whose centre is at or after level-0 ``coordinate``."""
    return np.ceil(np.asarray(coordinate, np.float64) / downsample - 0.5 - _EPS).astype(np.int64)


def _as_uint8(block: np.ndarray, path: str | Path) -> np.ndarray:
    if block.dtype == np.uint8:
        return block
    if block.dtype.kind not in "iub" or (block.size and (block.min() < 0 or block.max() > 255)):
        raise RaznError(f"labels must be integers 0-255, got dtype {block.dtype}", path)
    return block.astype(np.uint8)


def _rgb(colour: Iterable[Any]) -> tuple[int, int, int]:
    values = [int(v) for v in colour][:3]
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise RaznError(f"a colour must be 3 integers 0-255, got {values}")
    return values[0], values[1], values[2]


def _hue_channel(hue: float, shift: float) -> float:
    """One RGB channel of a fully saturated hue (0–1), by a triangle wave."""
    return float(np.clip(abs(((hue + shift) % 1.0) * 6 - 3) - 1, 0, 1))
