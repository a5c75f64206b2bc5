"""Where tissue and tumour are: the label layers of a rectangle of a synthetic slide.

Three sources of tumour, so that zooming matters:

* **large regions** — a smooth low-frequency field above a threshold; the *label* border
  is that outline moved by a fine noise (tens of µm), so it is only exact at fine levels;
* **small foci** — irregular blobs (radius ``focus_radius_um``) at hashed positions of a
  jittered grid, invisible at coarse levels;
* nothing outside tissue: background is never tumour.

And one source of *normal* tissue that looks suspicious at coarse levels: lymphocyte
aggregates ("mimics", same blob shapes, label 0), dense with small dark nuclei.

All layers are pure functions of level-0 coordinates (see :mod:`razn.data.synth.noise`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from razn.data.synth.bach import BachLayers, bach_layers
from razn.data.synth.blob_grid import disc_window, jittered_blobs
from razn.data.synth.layout import (
    STREAM_BLOB_WOBBLE,
    STREAM_BORDER,
    STREAM_FOCI,
    STREAM_LABEL_NOISE,
    STREAM_MIMIC,
    STREAM_TISSUE_EDGE,
    SlideLayout,
    region_field,
    tissue_field,
)
from razn.data.synth.noise import fractal_noise

_BLOB_IRREGULARITY = 0.45  # largest relative radius wobble of a focus or mimic outline
_BLOB_WOBBLE_UM = 12.0  # feature size of the outline wobble of blobs
_TISSUE_EDGE_UM = 40.0  # how far (and how finely) the tissue outline frays


@dataclass(frozen=True)
class Layers:
    """Label layers of one rectangle, each ``[y, x]`` in level-0 pixels.

    ``tissue_depth`` and ``tint`` are float32 in field units and [0, 1]; the rest are bool.
    """

    tissue_depth: np.ndarray
    """Tissue field minus its threshold: > 0 on tissue (grows towards island centres)."""
    tint: np.ndarray
    """0..1 weight of the coarse tumour tint: follows the smooth region outline only."""
    tumour: np.ndarray
    """True where the image shows tumour (regions with their fine border, and foci)."""
    mask: np.ndarray
    """The ground-truth mask: ``tumour``, with the borders jittered when ``label_noise > 0``
    (bool; uint8 class values with ``classes: bach``)."""
    fine_detail: np.ndarray
    """Tissue whose class needs a fine level to decide: border band, foci and mimics."""
    focus: np.ndarray
    """True inside small foci (on tissue)."""
    mimic: np.ndarray
    """True inside lymphocyte aggregates that are not in tumour (on tissue)."""
    region: np.ndarray
    """True inside large tumour regions, with their irregular border (on tissue)."""
    bach: BachLayers | None = None
    """The four-class layers (``classes: bach``); then ``tumour`` is invasive carcinoma and
    ``mask`` holds class values 0 … 3."""

    def crop(self, window: tuple[slice, slice]) -> Layers:
        """The same layers of a sub-rectangle ``[y, x]`` slices."""
        arrays = {name: getattr(self, name)[window] for name in _ARRAYS}
        return Layers(**arrays, bach=None if self.bach is None else self.bach.crop(window))


def label_layers(layout: SlideLayout, x0: int, y0: int, w: int, h: int) -> Layers:
    """The :class:`Layers` of the level-0 rectangle at ``(x0, y0)`` of size ``w x h``."""
    xs = np.arange(x0, x0 + w, dtype=np.float64)
    ys = np.arange(y0, y0 + h, dtype=np.float64)
    tissue_depth = _tissue_depth(layout, xs, ys)
    tissue = tissue_depth > 0
    smooth = region_field(xs, ys, layout.region_px, layout.seed)
    smooth -= np.float32(layout.region_threshold)
    wobble = _signed_noise(layout, xs, ys, STREAM_BORDER, 2.0 * layout.border_px)
    band_amp = np.float32(layout.border_amplitude)
    region_level = smooth + band_amp * wobble  # > 0 inside a region, border in the band
    edge = _blob_edge(layout, xs, ys, wobble)
    region = tissue & (region_level > 0)
    focus = tissue & _blobs(layout, STREAM_FOCI, layout.config.focus_density, (x0, y0), edge)
    tumour = region | focus
    mimic = _blobs(layout, STREAM_MIMIC, layout.config.mimic_density, (x0, y0), edge)
    mimic &= tissue & ~tumour
    mask = tumour
    if layout.label_noise_amplitude > 0:
        mask = _noisy_mask(layout, xs, ys, tissue, region_level, edge)
    bach = None
    if layout.config.classes == "bach":
        bach = bach_layers(layout, xs, ys, tissue, tumour, wobble, edge)
        mask = bach.classes(mask)
    return Layers(
        tissue_depth=tissue_depth,
        tint=_tint(smooth, band_amp),
        tumour=tumour,
        mask=mask,
        fine_detail=tissue & ((np.abs(smooth) < band_amp) | focus | mimic),
        focus=focus,
        mimic=mimic,
        region=region,
        bach=bach,
    )


_ARRAYS = tuple(name for name in Layers.__dataclass_fields__ if name != "bach")


def _tissue_depth(layout: SlideLayout, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Tissue field minus threshold, its outline frayed by fine noise (> 0 on tissue)."""
    depth = tissue_field(xs, ys, layout.width, layout.height, layout.island_px, layout.seed)
    spacing = layout.config.um_to_px(_TISSUE_EDGE_UM)
    fray = fractal_noise(xs, ys, spacing, layout.seed, STREAM_TISSUE_EDGE, octaves=3, gain=0.6)
    # Unclipped, so the outline stays curvy; moves it by up to about one feature size.
    amplitude = np.float32(2.0 * layout.tissue_slope * spacing)
    depth += (fray - np.float32(0.5)) * amplitude - np.float32(layout.tissue_threshold)
    return depth


def _noisy_mask(
    layout: SlideLayout,
    xs: np.ndarray,
    ys: np.ndarray,
    tissue: np.ndarray,
    region_level: np.ndarray,
    edge: np.ndarray,
) -> np.ndarray:
    """The mask with ``label_noise``: region and foci outlines moved by an independent noise."""
    jitter = _signed_noise(layout, xs, ys, STREAM_LABEL_NOISE, 2.0 * layout.border_px)
    region = region_level + np.float32(layout.label_noise_amplitude) * jitter > 0
    extra = layout.config.um_to_px(layout.config.label_noise)
    origin = (int(xs[0]), int(ys[0]))
    shift = jitter * np.float32(extra)
    foci = _blobs(layout, STREAM_FOCI, layout.config.focus_density, origin, edge, shift, extra)
    return tissue & (region | foci)


def _signed_noise(
    layout: SlideLayout, xs: np.ndarray, ys: np.ndarray, stream: int, spacing: float
) -> np.ndarray:
    """Fine multi-octave noise in [-1, 1] with features of ``spacing`` px and smaller."""
    field = fractal_noise(xs, ys, max(spacing, 4.0), layout.seed, stream, octaves=3, gain=0.6)
    # Octave sums bunch around 0.5; stretching by 5 uses most of [-1, 1] (then clipped).
    return np.clip((field - np.float32(0.5)) * np.float32(5.0), -1.0, 1.0)


def _blob_edge(
    layout: SlideLayout, xs: np.ndarray, ys: np.ndarray, wobble: np.ndarray
) -> np.ndarray:
    """Relative radius wobble of blob outlines, in about [-1, 1] times the irregularity."""
    fine = _signed_noise(
        layout, xs, ys, STREAM_BLOB_WOBBLE, layout.config.um_to_px(_BLOB_WOBBLE_UM)
    )
    return np.float32(0.5 * _BLOB_IRREGULARITY) * (wobble + fine)


def _tint(smooth: np.ndarray, band_amp: np.float32) -> np.ndarray:
    """Smoothstep from 0 to 1 across the band, centred on the smooth outline."""
    width = max(float(band_amp), 1e-6)
    t = np.clip(smooth * np.float32(0.5 / width) + np.float32(0.5), 0.0, 1.0)
    return t * t * (np.float32(3.0) - np.float32(2.0) * t)


def blob_params(
    layout: SlideLayout,
    stream: int,
    density: float,
    box: tuple[int, int, int, int],
    margin: float = 0.0,
) -> np.ndarray:
    """Blobs (foci or mimics) that may touch the level-0 box ``(x0, y0, w, h)``.

    Rows ``(cx, cy, radius)`` in level-0 px; ``margin`` widens the search (label noise).
    """
    radii = layout.config.focus_radius_um
    return jittered_blobs(layout, stream, density, box, radii, 1.0 + _BLOB_IRREGULARITY, margin)


def _blobs(
    layout: SlideLayout,
    stream: int,
    density: float,
    origin: tuple[int, int],
    edge: np.ndarray,
    shift: np.ndarray | None = None,
    margin: float = 0.0,
) -> np.ndarray:
    """Boolean ``[y, x]``: inside some blob of ``stream``; ``edge`` wobbles the outline.

    ``shift`` (px, mask only) moves outlines further, by up to ``margin`` px.
    """
    h, w = edge.shape
    inside = np.zeros((h, w), dtype=bool)
    for cx, cy, radius in blob_params(layout, stream, density, (*origin, w, h), margin):
        reach = radius * (1.0 + _BLOB_IRREGULARITY) + margin + 1.0
        found = disc_window(origin, (h, w), cx, cy, reach)
        if found is None:
            continue
        window, dist = found
        dist = dist * np.float32(1.0 / radius)
        limit: np.ndarray = np.float32(1.0) + edge[window]
        if shift is not None:
            limit = limit + shift[window] * np.float32(1.0 / radius)
        inside[window] |= dist < limit
    return inside
