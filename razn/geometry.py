"""Zoom geometry: working levels, patch grids and a patch's r² children. Pure functions.

Conventions (level-0 pixels throughout, as in :mod:`razn.slide.base`):

* Working level ``i`` has downsample ``d_i``; ``d_0`` is the coarsest, ``d_m`` the
  finest, and ``d_i = r · d_{i+1}`` for one integer zoom rate ``r``.
* A **node** ``(level, col, row)`` is a patch of ``P × P`` pixels at its level. It
  covers the level-0 square ``[col·s_i, (col+1)·s_i) × [row·s_i, (row+1)·s_i)`` with
  ``s_i = P · d_i`` (the node's *extent*).
* Its children are the ``r²`` nodes ``(level+1, col·r + a, row·r + b)``,
  ``a, b ∈ [0, r)``; they tile the parent's square exactly because ``s_i = r · s_{i+1}``.
* The root grid covers the whole slide with ``ceil(W / s_0) × ceil(H / s_0)`` nodes;
  nodes on the right and bottom edges reach past the slide (read as white, clipped
  when stitched).

Because every extent is an integer number of level-0 pixels and every grid starts
at the origin, all levels share one lattice: no gaps, overlaps or one-pixel shifts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from razn.errors import ConfigError


@dataclass(frozen=True, order=True)
class Node:
    """A patch: working ``level`` (0 = coarsest) and its ``col``/``row`` in that level's grid."""

    level: int
    col: int
    row: int


@dataclass(frozen=True)
class ZoomGeometry:
    """The working levels and patch size of a zoom hierarchy.

    Args:
        downsamples: ``d_0 > d_1 > … > d_m`` relative to level 0, each ``r`` times the next.
        patch_size: ``P``, the patch side in pixels at every level.
    """

    downsamples: tuple[float, ...]
    patch_size: int

    def __post_init__(self) -> None:
        ds = tuple(float(d) for d in self.downsamples)
        object.__setattr__(self, "downsamples", ds)
        if not ds:
            raise ConfigError("at least one working downsample is needed")
        if self.patch_size < 1:
            raise ConfigError(f"patch size must be positive, got {self.patch_size}")
        if ds[-1] < 1:
            raise ConfigError(f"the finest working downsample must be >= 1, got {ds[-1]}")
        for d in ds:
            if abs(d * self.patch_size - round(d * self.patch_size)) > 1e-9:
                raise ConfigError(
                    f"patch size {self.patch_size} x downsample {d} is not a whole number "
                    "of level-0 pixels; choose integer downsamples"
                )
        if len(ds) > 1:
            rates = {ds[i] / ds[i + 1] for i in range(len(ds) - 1)}
            rate = ds[0] / ds[1]
            if (
                any(abs(r - rate) > 1e-9 for r in rates)
                or abs(rate - round(rate)) > 1e-9
                or rate < 2
            ):
                raise ConfigError(
                    f"working downsamples {list(ds)} must fall by one integer rate >= 2 "
                    "per level (e.g. 8, 4, 2, 1)"
                )

    @property
    def num_levels(self) -> int:
        """``m + 1``: the number of working levels."""
        return len(self.downsamples)

    @property
    def finest_level(self) -> int:
        """``m``: the level where only segmentation is left."""
        return len(self.downsamples) - 1

    @property
    def rate(self) -> int:
        """``r``: the zoom factor between adjacent working levels (1 with a single level)."""
        if len(self.downsamples) == 1:
            return 1
        return round(self.downsamples[0] / self.downsamples[1])

    def extent(self, level: int) -> int:
        """Level-0 pixels spanned by one side of a patch at ``level``."""
        return round(self.patch_size * self.downsamples[level])

    def grid_shape(self, dimensions: tuple[int, int], level: int = 0) -> tuple[int, int]:
        """``(cols, rows)`` of the grid at ``level`` covering a slide of ``dimensions`` (w, h)."""
        extent = self.extent(level)
        return (math.ceil(dimensions[0] / extent), math.ceil(dimensions[1] / extent))

    def location(self, node: Node) -> tuple[int, int]:
        """Level-0 ``(x, y)`` of the node's top-left corner."""
        extent = self.extent(node.level)
        return (node.col * extent, node.row * extent)

    def roots(self, dimensions: tuple[int, int]) -> Iterator[Node]:
        """Every level-0 node of the slide, row by row."""
        cols, rows = self.grid_shape(dimensions, 0)
        for row in range(rows):
            for col in range(cols):
                yield Node(0, col, row)

    def children(self, node: Node) -> list[Node]:
        """The ``r²`` nodes one level finer that tile ``node`` exactly, row by row."""
        if node.level >= self.finest_level:
            raise ValueError(f"{node} is at the finest level and has no children")
        r = self.rate
        return [
            Node(node.level + 1, node.col * r + a, node.row * r + b)
            for b in range(r)
            for a in range(r)
        ]

    def parent(self, node: Node) -> Node:
        """The node one level coarser that contains ``node``."""
        if node.level == 0:
            raise ValueError(f"{node} is a root and has no parent")
        return Node(node.level - 1, node.col // self.rate, node.row // self.rate)

    def clipped_box(self, node: Node, dimensions: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``: the node's level-0 square clipped to the slide (may be empty)."""
        x, y = self.location(node)
        extent = self.extent(node.level)
        return (x, y, min(x + extent, dimensions[0]), min(y + extent, dimensions[1]))


def check_margin(margin: int, patch_size: int, encoder_depth: int, name: str) -> None:
    """Refuse a context margin (px on every side of a patch) that the networks cannot take:
    an encoder of ``depth`` stages halves its input that many times, so ``P + 2·margin``
    must stay a multiple of what ``P`` is a multiple of (up to ``2^depth``). ``name``: the
    setting, for the message."""
    stride = math.gcd(patch_size, 2**encoder_depth)
    if margin < 0 or (2 * margin) % stride:
        raise ConfigError(
            f"{name} {margin} px: the networks need inputs a multiple of {stride} px, and "
            f"{patch_size} + 2 × {margin} = {patch_size + 2 * margin} is not; use a "
            f"non-negative multiple of {max(stride // 2, 1)}"
        )


def zoom_geometry(downsamples: Sequence[float], patch_size: int) -> ZoomGeometry:
    """Build and validate a :class:`ZoomGeometry`."""
    return ZoomGeometry(tuple(float(d) for d in downsamples), int(patch_size))


def centre_indices(
    start: float | np.ndarray, downsample: float, count: int, source_downsample: float
) -> np.ndarray:
    """Nearest-neighbour sampling: for ``count`` pixels at ``downsample`` starting at level-0
    ``start``, the index of the pixel of a grid at ``source_downsample`` holding each centre.
    ``(count,)`` for one ``start``; ``(N, count)`` for an array of ``N`` starts.

    A centre exactly on a source pixel edge belongs to the pixel on its right (or below);
    the small epsilon keeps that true through floating-point rounding.
    """
    offsets = (np.arange(count) + 0.5) * downsample
    centres = (np.asarray(start, np.float64)[..., None] + offsets) / source_downsample
    return np.floor(centres + 1e-7).astype(np.int64)


def resample_labels(prediction: np.ndarray, ratio: float) -> np.ndarray:
    """Resample a label image by nearest neighbour between two grids of the zoom lattice.

    Args:
        prediction: ``(h, w)`` labels at downsample ``d``.
        ratio: ``d / d_target``; an integer >= 1 repeats pixels, ``1 / q`` for an integer
            ``q`` keeps the pixel under each target pixel's centre.
    """
    if ratio >= 1:
        k = round(ratio)
        return np.repeat(np.repeat(prediction, k, axis=0), k, axis=1) if k > 1 else prediction
    q = round(1 / ratio)
    return prediction[q // 2 :: q, q // 2 :: q]
