"""Hashed, jittered grids of discs: where blobs (foci, mimics, ducts) sit, and the pixels
of a rectangle near one. Pure functions of level-0 coordinates and the slide's seed."""

from __future__ import annotations

import math

import numpy as np

from razn.data.synth.layout import SlideLayout
from razn.data.synth.noise import hash_uniform

BLOB_CELL_OCCUPANCY = 0.5  # chance that a cell of a blob grid holds a blob


def blob_grid_px(layout: SlideLayout, density: float) -> float:
    """Cell size (level-0 px) of the jittered grid of candidate blob centres."""
    density_px = density / (1000.0 / layout.config.mpp) ** 2  # per mm² -> per px²
    return math.sqrt(BLOB_CELL_OCCUPANCY / density_px)


def jittered_blobs(
    layout: SlideLayout,
    stream: int,
    density: float,
    box: tuple[int, int, int, int],
    radius_um: tuple[float, float],
    reach: float,
    margin: float = 0.0,
    extra: int = 0,
) -> np.ndarray:
    """Blobs of one hashed, jittered grid (``density`` per mm²) that may touch the level-0
    box ``(x0, y0, w, h)``: rows ``(cx, cy, radius, u_1 … u_extra)`` in level-0 px, the
    radius log-uniform in ``radius_um`` (many small), ``extra`` more uniform draws per blob.
    ``reach``: how far an outline may extend, in radii; ``margin`` widens the search (px)."""
    if density <= 0:
        return np.zeros((0, 3 + extra))
    cfg = layout.config
    x0, y0, w, h = box
    grid = blob_grid_px(layout, density)
    r_lo, r_hi = (cfg.um_to_px(r) for r in radius_um)
    search = r_hi * reach + margin + 1.0
    gx: np.ndarray = np.arange(
        math.floor((x0 - search) / grid), math.floor((x0 + w + search) / grid) + 1
    )
    gy: np.ndarray = np.arange(
        math.floor((y0 - search) / grid), math.floor((y0 + h + search) / grid) + 1
    )
    gx, gy = np.meshgrid(gx, gy)
    u = [hash_uniform(gx, gy, layout.seed, stream * 64 + k) for k in range(4 + extra)]
    present = u[0] < BLOB_CELL_OCCUPANCY
    cx = (gx + u[1]) * grid
    cy = (gy + u[2]) * grid
    radius = r_lo * (r_hi / r_lo) ** u[3].astype(np.float64)  # log-uniform: many small
    columns = [cx, cy, radius, *u[4:]]
    return np.stack([c[present] for c in columns], axis=1)


def disc_window(
    origin: tuple[int, int], shape: tuple[int, int], cx: float, cy: float, reach: float
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The part of a rectangle (level-0 ``origin``, ``shape`` ``(h, w)``) within ``reach`` px
    of ``(cx, cy)``: its ``[y, x]`` slices and float32 distances from the centre, or None
    when they do not meet."""
    h, w = shape
    x0, y0 = origin
    xa, xb = max(math.floor(cx - reach) - x0, 0), min(math.ceil(cx + reach) - x0 + 1, w)
    ya, yb = max(math.floor(cy - reach) - y0, 0), min(math.ceil(cy + reach) - y0 + 1, h)
    if xa >= xb or ya >= yb:
        return None
    dx = np.arange(x0 + xa, x0 + xb, dtype=np.float32) - np.float32(cx)
    dy = np.arange(y0 + ya, y0 + yb, dtype=np.float32) - np.float32(cy)
    return np.s_[ya:yb, xa:xb], np.sqrt(dx[None, :] ** 2 + dy[:, None] ** 2)
