"""Stitch per-patch label masks into one full-slide zarr label array, chunk by chunk.

The output array is at downsample ``d_out`` (level-0 px per output pixel; by default
the finest working level). Its chunks are exactly the output footprint of one
finest-level patch, so every patch of every level covers whole chunks at aligned
offsets: a write never touches a chunk another patch owns, and nothing but the
chunks being written is ever held in memory. Unwritten chunks read as the fill value
0 (background), which is what areas outside tissue are.

Each zarr write call costs about a millisecond on top of its chunks, so
:meth:`LabelWriter.write_batch` merges the masks of complete sibling groups (the r²
children of one node, recursively) into one block and writes it in one call: the pixels
are the same, the calls up to r² times fewer per level of merging.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from razn.errors import RaznError
from razn.geometry import Node, ZoomGeometry, resample_labels
from razn.slide.levels import level_size


class LabelWriter:
    """Writes final patch masks into ``<path>`` (a zarr v3 array of uint8 labels).

    Args:
        path: where the array is created (replaced if it exists).
        geometry: the zoom geometry (patch size, working downsamples).
        dimensions: the slide's level-0 ``(w, h)``.
        downsample: output resolution; must divide the coarsest working downsample
            by a power of the zoom rate, like the working levels do.
    """

    def __init__(
        self, path: Path, geometry: ZoomGeometry, dimensions: tuple[int, int], downsample: float
    ):
        import zarr

        self.geometry = geometry
        self.dimensions = dimensions
        self.downsample = float(downsample)
        chunk = geometry.extent(geometry.finest_level) / self.downsample
        if abs(chunk - round(chunk)) > 1e-9 or chunk < 1:
            raise RaznError(
                f"output downsample {downsample} must divide the finest patch extent "
                f"{geometry.extent(geometry.finest_level)} (level-0 px) into whole pixels"
            )
        self.chunk = round(chunk)
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
        width, height = level_size(dimensions, self.downsample)
        self.array = zarr.create_array(
            store=str(path),
            shape=(height, width),
            chunks=(min(self.chunk, height), min(self.chunk, width)),
            dtype="uint8",
            fill_value=0,
            overwrite=True,
            dimension_names=("y", "x"),
        )
        self.pixels_written = 0

    def write(self, node: Node, labels: np.ndarray) -> None:
        """Write the ``(P, P)`` labels of a final ``node`` (at its own level's resolution)."""
        self._write_block(node, self._output_block(node, labels))

    def write_batch(self, nodes: Sequence[Node], labels: Sequence[np.ndarray]) -> None:
        """Write the ``(P, P)`` labels of several final nodes, each complete group of r²
        siblings (recursively) as one block (see the module docstring)."""
        blocks = {
            node: self._output_block(node, mask) for node, mask in zip(nodes, labels, strict=True)
        }
        for node, block in merge_siblings(blocks, self.geometry).items():
            self._write_block(node, block)

    def _output_block(self, node: Node, labels: np.ndarray) -> np.ndarray:
        """A node's labels at the output resolution."""
        return resample_labels(labels, self.geometry.downsamples[node.level] / self.downsample)

    def _write_block(self, node: Node, block: np.ndarray) -> None:
        """Write ``block`` (output resolution) with its top-left corner at ``node``'s."""
        x, y = self.geometry.location(node)
        x0, y0 = round(x / self.downsample), round(y / self.downsample)
        height, width = self.array.shape
        h, w = min(block.shape[0], height - y0), min(block.shape[1], width - x0)
        if h <= 0 or w <= 0:
            return
        self.array[y0 : y0 + h, x0 : x0 + w] = block[:h, :w]
        self.pixels_written += h * w


def merge_siblings(
    blocks: dict[Node, np.ndarray], geometry: ZoomGeometry
) -> dict[Node, np.ndarray]:
    """Replace every complete group of r² sibling blocks by one block at their parent,
    repeatedly (a parent's children tile it exactly, row by row, at equal sizes).

    Args:
        blocks: output-resolution blocks by node; nodes may be of any levels.
    Returns:
        Blocks covering the same pixels, keyed by the nodes at whose corners they start.
    """
    rate = geometry.rate
    merged = dict(blocks)
    while rate > 1:
        groups: dict[Node, list[Node]] = {}
        for node in merged:
            if node.level > 0:
                groups.setdefault(geometry.parent(node), []).append(node)
        complete = {p: c for p, c in groups.items() if len(c) == rate * rate}
        complete = {p: c for p, c in complete.items() if len({merged[n].shape for n in c}) == 1}
        if not complete:
            break
        for parent, children in complete.items():
            rows = sorted(children, key=lambda n: (n.row, n.col))
            grid = [[merged[n] for n in rows[i * rate : (i + 1) * rate]] for i in range(rate)]
            for child in children:
                del merged[child]
            merged[parent] = np.block(grid)
    return merged
