"""Stitch per-patch label masks into one full-slide zarr label array.

The output array is at downsample ``d_out`` (level-0 px per output pixel; by default
the finest working level). Its chunks are the output footprint of one **root** (a
level-0 patch), so every patch of every level lies inside exactly one chunk at an
aligned offset, and a slide of 8192² in 256-px patches at downsamples 8…1 is 16
chunks, not 1,024 (every zarr chunk written costs about a millisecond of encoding and
file work, whatever its size).

The engine decides a slide level by level, so a root's patches arrive at different
times. They are painted into an in-memory canvas per root and each canvas is written
once, as one chunk, when the slide is done (:meth:`LabelWriter.close`). When the
canvases would exceed ``buffer_bytes`` (a slide of 100,000² holds thousands of roots),
the least recently painted canvas is written early; should more of its patches come
later, its chunk is read back and merged (unpainted pixels keep what the chunk holds).
Memory therefore stays at ``buffer_bytes`` whatever the slide size. Unwritten areas
read as the fill value 0 (background), which is what areas outside tissue are.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from razn.errors import RaznError
from razn.geometry import Node, ZoomGeometry, resample_labels
from razn.slide.levels import level_size

UNPAINTED = 255
"""Canvas value of pixels no patch has written yet (never a class: at most 254 classes)."""

BUFFER_BYTES = 256 * 2**20
"""Default memory for root canvases (256 MiB: 64 roots of 2048² output pixels)."""

RUN_BYTES = 16 * 2**20
"""Most output pixels :meth:`LabelWriter.close` writes in one call (the band it joins)."""


class LabelWriter:
    """Writes final patch masks into ``<path>`` (a zarr v3 array of uint8 labels).

    Args:
        path: where the array is created (replaced if it exists).
        geometry: the zoom geometry (patch size, working downsamples).
        dimensions: the slide's level-0 ``(w, h)``.
        downsample: output resolution; must divide the coarsest working downsample
            by a power of the zoom rate, like the working levels do.
        buffer_bytes: memory for root canvases (see the module docstring).
    """

    def __init__(
        self,
        path: Path,
        geometry: ZoomGeometry,
        dimensions: tuple[int, int],
        downsample: float,
        buffer_bytes: int = BUFFER_BYTES,
    ):
        import zarr

        self.geometry = geometry
        self.dimensions = dimensions
        self.downsample = float(downsample)
        finest = geometry.extent(geometry.finest_level) / self.downsample
        if abs(finest - round(finest)) > 1e-9 or finest < 1:
            raise RaznError(
                f"output downsample {downsample} must divide the finest patch extent "
                f"{geometry.extent(geometry.finest_level)} (level-0 px) into whole pixels"
            )
        for d in geometry.downsamples:
            # resample_labels repeats or subsamples by whole pixels only: 4 px at d = 2
            # onto d_out = 3 would be written as 1.5 px each, overlapping their neighbours
            ratio = d / self.downsample
            steps = ratio if ratio >= 1 else 1 / ratio
            if abs(steps - round(steps)) > 1e-9:
                raise RaznError(
                    f"output downsample {downsample} must be a whole multiple or a whole "
                    f"fraction of every working downsample {list(geometry.downsamples)}; "
                    f"{d} / {downsample} is not"
                )
        self.chunk = round(geometry.extent(0) / self.downsample)
        """Output pixels per side of one chunk: one root's footprint."""
        width, height = level_size(dimensions, self.downsample)
        self.array = zarr.create_array(
            store=str(path),
            shape=(height, width),
            chunks=(min(self.chunk, height), min(self.chunk, width)),
            dtype="uint8",
            fill_value=0,
            overwrite=True,
            dimension_names=("y", "x"),
            # zarr's own test for a chunk equal to the fill value costs ~17 ms per 2048²
            # chunk, six times the write itself; _flush_oldest skips empty chunks instead.
            config={"write_empty_chunks": True},
        )
        self.buffer_bytes = int(buffer_bytes)
        self._canvases: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._flushed: set[tuple[int, int]] = set()
        self.pixels_written = 0
        self.chunks_written = 0

    def write(self, node: Node, labels: np.ndarray) -> None:
        """Write the ``(P, P)`` labels of a final ``node`` (at its own level's resolution)."""
        block = resample_labels(labels, self.geometry.downsamples[node.level] / self.downsample)
        x, y = self.geometry.location(node)
        x0, y0 = round(x / self.downsample), round(y / self.downsample)
        height, width = self.array.shape
        h, w = min(block.shape[0], height - y0), min(block.shape[1], width - x0)
        if h <= 0 or w <= 0:
            return
        root = (y0 // self.chunk, x0 // self.chunk)
        canvas = self._canvas(root)
        top, left = y0 - root[0] * self.chunk, x0 - root[1] * self.chunk
        canvas[top : top + h, left : left + w] = block[:h, :w]
        self.pixels_written += h * w

    def write_batch(self, nodes: Sequence[Node], labels: Iterable[np.ndarray]) -> None:
        """:meth:`write` for several final nodes."""
        for node, mask in zip(nodes, labels, strict=True):
            self.write(node, mask)

    def close(self) -> None:
        """Write every canvas still held (the slide is done). Neighbouring canvases of one
        row of chunks go in one call of up to ``RUN_BYTES``: zarr's own cost per call is
        most of a small chunk's write (row bands of 256² chunks took half the time of one
        call per chunk), and it encodes the chunks of one call side by side."""
        ready = {}
        for root in sorted(self._canvases):
            block = self._ready(root, self._canvases.pop(root))
            if block is not None:
                ready[root] = block
        longest = max(1, RUN_BYTES // self.chunk**2)
        run: list[tuple[int, int]] = []
        for root in sorted(ready):
            if run and (root != (run[-1][0], run[-1][1] + 1) or len(run) == longest):
                self._store(run, [ready.pop(r) for r in run])
                run = []
            run.append(root)
        if run:
            self._store(run, [ready.pop(r) for r in run])

    def _canvas(self, root: tuple[int, int]) -> np.ndarray:
        """The canvas of ``root`` (most recently used now), made when first painted."""
        canvas = self._canvases.get(root)
        if canvas is not None:
            self._canvases.move_to_end(root)
            return canvas
        height, width = self.array.shape
        y0, x0 = root[0] * self.chunk, root[1] * self.chunk
        shape = (min(self.chunk, height - y0), min(self.chunk, width - x0))
        while self._canvases and (len(self._canvases) + 1) * self.chunk**2 > self.buffer_bytes:
            self._flush_oldest()
        canvas = np.full(shape, UNPAINTED, np.uint8)
        self._canvases[root] = canvas
        return canvas

    def _flush_oldest(self) -> None:
        root, canvas = self._canvases.popitem(last=False)
        block = self._ready(root, canvas)
        if block is not None:
            self._store([root], [block])

    def _ready(self, root: tuple[int, int], canvas: np.ndarray) -> np.ndarray | None:
        """The chunk to write for ``root`` from its ``canvas``; None when it stays absent
        (never written before and all background, which the fill value already reads as)."""
        unpainted = canvas == UNPAINTED
        if root in self._flushed:  # written early before: keep what it holds where unpainted
            window = self._window(root, canvas.shape)
            return np.where(unpainted, np.asarray(self.array[window]), canvas)
        canvas[unpainted] = 0  # never written: background, the fill value
        return canvas if canvas.any() else None

    def _store(self, roots: list[tuple[int, int]], blocks: list[np.ndarray]) -> None:
        """Write the chunks of ``roots``, neighbours in one row of chunks, in one call."""
        band = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
        self.array[self._window(roots[0], band.shape)] = band
        self._flushed.update(roots)
        self.chunks_written += len(roots)

    def _window(self, root: tuple[int, int], shape: tuple[int, ...]) -> tuple[slice, slice]:
        """The output pixels of a block of ``shape`` whose top-left chunk is ``root``."""
        y0, x0 = root[0] * self.chunk, root[1] * self.chunk
        return (slice(y0, y0 + shape[0]), slice(x0, x0 + shape[1]))
