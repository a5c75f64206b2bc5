"""Nuclei: at most one per cell of a jittered grid, its class taken from the label at its centre.

Tumour nuclei are larger, elongated at random angles, crowded and vesicular (a dark rim
around a paler centre); normal nuclei are small, sparse and evenly dark, round or
spindle-shaped; lymphocytes in mimic aggregates are small, round, very dark and crowded.

A nucleus stays within 0.7 cells of its centre and centres lie in the middle 60 % of their
cell, so each pixel only needs the 2x2 cells nearest to it. That choice depends on the
pixel alone, which keeps tiles seamless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from razn.data.synth.fields import Layers
from razn.data.synth.layout import STREAM_NUCLEI, SlideLayout
from razn.data.synth.noise import hash_uniform

_JITTER = (0.2, 0.6)  # centre = (cell + 0.2 + 0.6 u) * spacing


@dataclass(frozen=True)
class NucleusPaint:
    """What nuclei add to a rectangle, ``[y, x]`` float32 in [0, 1].

    ``cover`` is the area covered by a nucleus (soft at the edge); ``stain`` is the
    haematoxylin of the nucleus there, relative to a full dark nucleus.
    """

    cover: np.ndarray
    stain: np.ndarray


def nucleus_pad(layout: SlideLayout) -> int:
    """Margin (px) around a rectangle whose labels decide the class of its nuclei."""
    return math.ceil(0.7 * _spacing(layout)) + 2


def paint_nuclei(
    layout: SlideLayout, x0: int, y0: int, w: int, h: int, grown: Layers
) -> NucleusPaint:
    """Nuclei of the level-0 rectangle ``(x0, y0, w, h)``.

    ``grown`` holds the label layers of the same rectangle grown by :func:`nucleus_pad` on
    every side: a nucleus exists only on tissue and takes the class of its centre pixel.
    """
    c = _spacing(layout)
    xs = np.arange(x0, x0 + w, dtype=np.float64)
    ys = np.arange(y0, y0 + h, dtype=np.float64)
    kx0 = np.floor(xs / c - 0.5).astype(np.int64)  # left one of the 2 nearest cell columns
    ky0 = np.floor(ys / c - 0.5).astype(np.int64)
    kinds = _kind_map(grown)
    box = (int(kx0.min()), int(ky0.min()), int(kx0.max()) + 1, int(ky0.max()) + 1)
    cells = _cell_params(layout, box, kinds, (x0, y0))
    cover = np.zeros((h, w), dtype=np.float32)
    stain = np.zeros((h, w), dtype=np.float32)
    xf = xs.astype(np.float32)
    # Rows sharing their 2 nearest cell rows form a band; per band the cell parameters are
    # 1-D along x and broadcast over the rows, which avoids 2-D gathers.
    starts = np.flatnonzero(np.diff(ky0, prepend=ky0[0] - 1))
    for start, stop in zip(starts, [*starts[1:], h], strict=True):
        yf = ys[start:stop].astype(np.float32)[:, None]
        for dky in (0, 1):
            for dkx in (0, 1):
                row = cells[:, ky0[start] + dky - ky0.min(), kx0 + dkx - kx0.min()]
                _splat(row, xf, yf, cover[start:stop], stain[start:stop])
    return NucleusPaint(cover=cover, stain=stain)


def _spacing(layout: SlideLayout) -> float:
    return layout.config.um_to_px(layout.config.nucleus_spacing_um)


def _splat(
    row: np.ndarray, xf: np.ndarray, yf: np.ndarray, cover: np.ndarray, stain: np.ndarray
) -> None:
    """Draw one candidate nucleus per column into a band of rows (``cover``/``stain`` in place)."""
    cx, cy, a1, a2, b1, b2, soft, bias, dark, rim = row
    dx = xf - cx
    dy = yf - cy
    u = dx * a1 + dy * a2
    v = dx * b1 + dy * b2
    q = u * u + v * v  # < 1 inside the ellipse
    c = np.clip((np.float32(1.0) - q) * soft + bias, 0.0, 1.0)
    s = c * dark * (np.float32(1.0) - rim + rim * np.minimum(q, np.float32(1.0)))
    np.maximum(cover, c, out=cover)
    np.maximum(stain, s, out=stain)


def _kind_map(grown: Layers) -> np.ndarray:
    """int8 ``[y, x]``: -1 none (glass, gland lumen), 0 normal, 1 tumour, 2 lymphocyte
    aggregate (mimic); with ``classes: bach`` also 3 regular epithelium, 4 myoepithelium
    (duct rims), and in situ filling is tumour."""
    kinds = np.where(grown.tumour, np.int8(1), np.where(grown.mimic, np.int8(2), np.int8(0)))
    bach = grown.bach
    if bach is not None:
        kinds[bach.epithelium] = 3
        kinds[bach.rim] = 4
        kinds[bach.in_situ & ~bach.rim] = 1
        kinds[bach.lumen > 0.5] = -1
        kinds[grown.tumour] = 1
    kinds[grown.tissue_depth <= 0] = -1
    return kinds


def _kind_table(layout: SlideLayout) -> np.ndarray:
    """float64 ``[kind, 7]`` (kinds of :func:`_kind_map`): density, radius lo/hi (px),
    minor/major lo/hi, darkness, rim."""
    cfg = layout.config
    n_lo, n_hi = (cfg.um_to_px(r) for r in cfg.normal_nucleus_radius_um)
    t_lo, t_hi = (cfg.um_to_px(r) for r in cfg.tumour_nucleus_radius_um)
    return np.array(
        [
            # density, r_lo, r_hi, minor/major lo, hi, darkness, rim
            [cfg.normal_nucleus_density, n_lo, n_hi, 0.4, 1.0, 0.9, 0.1],
            [cfg.tumour_nucleus_density, t_lo, t_hi, 0.6, 0.95, 0.68, 0.45],
            [0.9, 0.9 * n_lo, 0.9 * n_hi, 0.85, 1.0, 1.1, 0.05],
            # bach: regular epithelium (even, round, crowded) and flat dark myoepithelium
            [0.7, n_lo, n_hi, 0.75, 1.0, 0.8, 0.1],
            [0.95, n_lo, 1.2 * n_hi, 0.3, 0.5, 1.0, 0.0],
        ]
    )


def _cell_params(
    layout: SlideLayout,
    cells: tuple[int, int, int, int],
    kinds: np.ndarray,
    origin: tuple[int, int],
) -> np.ndarray:
    """float32 ``[10, ky, kx]`` for the cells ``kx_lo..kx_hi x ky_lo..ky_hi`` (inclusive).

    Per cell: centre, ellipse axes, edge ramp and bias, darkness and rim. Absent nuclei get
    a zero ramp and a negative bias, so they cover nothing.
    """
    kx_lo, ky_lo, kx_hi, ky_hi = cells
    c = _spacing(layout)
    kx = np.arange(kx_lo, kx_hi + 1)[None, :]
    ky = np.arange(ky_lo, ky_hi + 1)[:, None]
    u = [hash_uniform(kx, ky, layout.seed, STREAM_NUCLEI * 64 + k) for k in range(7)]
    cx = (kx + _JITTER[0] + _JITTER[1] * u[0]) * c
    cy = (ky + _JITTER[0] + _JITTER[1] * u[1]) * c
    pad = nucleus_pad(layout)
    px = np.clip(np.rint(cx).astype(np.int64) - origin[0] + pad, 0, kinds.shape[1] - 1)
    py = np.clip(np.rint(cy).astype(np.int64) - origin[1] + pad, 0, kinds.shape[0] - 1)
    kind = kinds[py, px]
    table = _kind_table(layout)[np.maximum(kind, 0)]  # [ky, kx, 7]; glass reads as normal
    present = (kind >= 0) & (u[2] < table[..., 0])
    major = table[..., 1] + (table[..., 2] - table[..., 1]) * u[3]
    minor = major * (table[..., 3] + (table[..., 4] - table[..., 3]) * u[4])
    angle = np.pi * u[5]
    inv_major = np.where(present, 1.0 / major, 0.0)
    inv_minor = np.where(present, 1.0 / minor, 0.0)
    params = [
        cx,
        cy,
        np.cos(angle) * inv_major,
        np.sin(angle) * inv_major,
        -np.sin(angle) * inv_minor,
        np.cos(angle) * inv_minor,
        np.where(present, 0.5 * minor, 0.0),  # (1 - q) * minor / 2 ~ px inside the edge
        np.where(present, 0.5, -1.0),  # soft edge: half covered exactly on the ellipse
        table[..., 5] * (0.85 + 0.3 * u[6]),
        table[..., 6],
    ]
    return np.stack([np.broadcast_to(p, cx.shape) for p in params]).astype(np.float32)
