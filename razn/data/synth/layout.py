"""Per-slide constants of the synthetic tissue: feature sizes in pixels and field thresholds.

A :class:`SlideLayout` is computed once per slide from ``(width, height, seed, config)``
and is all a renderer needs besides the tile's position. Thresholds are quantiles of the
noise fields sampled on a coarse grid over the whole slide, so the configured tissue and
tumour fractions hold for every slide size and seed (up to sampling error).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from razn.data.synth.config import SynthConfig
from razn.data.synth.noise import fractal_noise, hash_uniform

# Stream ids of the independent random quantities of one slide. Each is < 64 because
# fractal octaves and per-cell values use ``stream * 64 + k``; a stream is used either for
# noise fields or for per-cell values, never both, so no two quantities share a hash.
STREAM_TISSUE = 1
STREAM_REGION = 2
STREAM_BORDER = 3
STREAM_LABEL_NOISE = 4
STREAM_FOCI = 5
STREAM_NUCLEI = 6
STREAM_STAIN_H = 7
STREAM_STAIN_E = 8
STREAM_FIBRE = 9
STREAM_FIBRE_DENSITY = 11
STREAM_GRAIN = 12
STREAM_MOTTLE = 13
STREAM_GLOBAL = 14
STREAM_MIMIC = 15
STREAM_BLOB_WOBBLE = 16
STREAM_TISSUE_EDGE = 17
STREAM_BENIGN = 18
STREAM_GLAND = 19
STREAM_DUCT = 20

_SAMPLES = 192  # coarse grid per axis used to pick thresholds: cheap and stable enough
_EDGE_MARGIN = 0.06  # share of each side kept mostly free of tissue, as on a real slide


@dataclass(frozen=True)
class SlideLayout:
    """Everything about one slide that does not depend on the tile being rendered.

    Lengths are level-0 pixels; thresholds are in the units of the fields (noise in [0, 1)).
    """

    width: int
    """Level-0 width of the slide (px)."""
    height: int
    """Level-0 height of the slide (px)."""
    seed: int
    """The slide's seed: every hash of this slide is keyed by it."""
    config: SynthConfig
    """The knobs the slide was made with."""
    island_px: float
    """Lattice spacing of the tissue field (px): the typical island size."""
    region_px: float
    """Lattice spacing of the large-region field (px)."""
    tissue_threshold: float
    """Tissue where the tissue field exceeds this (gives ``tissue_fraction``)."""
    region_threshold: float
    """Large regions where the region field exceeds this (gives ``tumour_fraction``)."""
    border_amplitude: float
    """Region-field units that the fine border noise may add or remove: ``border_width_um``
    times the field's typical slope at the outline."""
    tissue_slope: float
    """Typical slope of the tissue field at its outline (field units per px)."""
    label_noise_amplitude: float
    """Like ``border_amplitude``, for the mask-only ``label_noise``."""
    stain_h: float
    """The slide's haematoxylin intensity factor (about 1 +- stain_variation)."""
    stain_e: float
    """The slide's eosin intensity factor."""
    benign_threshold: float = float("inf")
    """``bach`` only: benign regions where the benign field exceeds this (gives
    ``benign_fraction`` of the tissue outside invasive regions); inf: none."""

    @property
    def border_px(self) -> float:
        """Half-width of the irregular border band of large regions (level-0 px)."""
        return self.config.um_to_px(self.config.border_width_um)


@functools.lru_cache(maxsize=16)
def slide_layout(width: int, height: int, seed: int, config: SynthConfig) -> SlideLayout:
    """The :class:`SlideLayout` of a ``width x height`` (level-0 px) slide (cached)."""
    longer = max(width, height)
    island_px = max(config.island_size * longer, 64.0)
    # Regions never shrink below a few border widths, or they would be all border.
    region_px = max(config.region_size * longer, 6.0 * config.um_to_px(config.border_width_um))
    xs = (np.arange(_SAMPLES) + 0.5) * (width / _SAMPLES)
    ys = (np.arange(_SAMPLES) + 0.5) * (height / _SAMPLES)
    tissue = tissue_field(xs, ys, width, height, island_px, seed)
    tissue_thr = _quantile_threshold(tissue, config.tissue_fraction)
    region = region_field(xs, ys, region_px, seed)
    inside = tissue > tissue_thr
    region_thr = _quantile_threshold(
        region[inside] if inside.any() else region, config.tumour_fraction
    )
    slope = _median_slope(region, xs, ys, region_thr)
    tissue_slope = _median_slope(tissue, xs, ys, tissue_thr)
    stain = hash_uniform(np.array([0, 1]), np.array([0, 0]), seed, STREAM_GLOBAL)
    benign_thr = float("inf")
    if config.classes == "bach":
        benign = benign_field(xs, ys, region_px, seed)
        free = inside & (region <= region_thr)
        benign_thr = _quantile_threshold(
            benign[free] if free.any() else benign,
            min(config.benign_fraction / max(1.0 - config.tumour_fraction, 1e-6), 1.0),
        )
    return SlideLayout(
        width=width,
        height=height,
        seed=seed,
        config=config,
        island_px=island_px,
        region_px=region_px,
        tissue_threshold=tissue_thr,
        region_threshold=region_thr,
        border_amplitude=slope * config.um_to_px(config.border_width_um),
        tissue_slope=tissue_slope,
        label_noise_amplitude=slope * config.um_to_px(config.label_noise),
        stain_h=1.0 + config.stain_variation * (2.0 * float(stain[0]) - 1.0),
        stain_e=1.0 + config.stain_variation * (2.0 * float(stain[1]) - 1.0),
        benign_threshold=benign_thr,
    )


def tissue_field(
    xs: np.ndarray, ys: np.ndarray, width: int, height: int, island_px: float, seed: int
) -> np.ndarray:
    """Low-frequency tissue field ``[y, x]``; tissue where it exceeds the threshold.

    A soft penalty near the slide's edges keeps islands inside the glass, as on real slides.
    """
    field = fractal_noise(xs, ys, island_px, seed, STREAM_TISSUE, octaves=4, gain=0.45)
    return field - _edge_penalty(xs, width)[None, :] - _edge_penalty(ys, height)[:, None]


def region_field(xs: np.ndarray, ys: np.ndarray, region_px: float, seed: int) -> np.ndarray:
    """Smooth field of large tumour regions ``[y, x]`` (tumour above the threshold)."""
    return fractal_noise(xs, ys, region_px, seed, STREAM_REGION, octaves=2, gain=0.35)


def benign_field(xs: np.ndarray, ys: np.ndarray, region_px: float, seed: int) -> np.ndarray:
    """``bach`` only: smooth field of large benign regions ``[y, x]`` (above the threshold)."""
    return fractal_noise(xs, ys, 1.3 * region_px, seed, STREAM_BENIGN, octaves=2, gain=0.35)


def _edge_penalty(coords: np.ndarray, extent: int) -> np.ndarray:
    """0 in the middle of the slide, rising smoothly to 0.5 at its edges (float32)."""
    margin = max(_EDGE_MARGIN * extent, 1.0)
    dist = np.minimum(coords, extent - 1 - coords) / margin
    t = np.clip(1.0 - dist, 0.0, 1.0).astype(np.float32)
    return np.float32(0.5) * t * t


def _quantile_threshold(values: np.ndarray, fraction: float) -> float:
    """The threshold above which ``fraction`` of ``values`` lie (inf for fraction 0)."""
    if fraction <= 0.0:
        return float("inf")
    if fraction >= 1.0:
        return float("-inf")
    return float(np.quantile(values, 1.0 - fraction))


def _median_slope(field: np.ndarray, xs: np.ndarray, ys: np.ndarray, threshold: float) -> float:
    """Median gradient magnitude (field units per px) of ``field`` near its threshold.

    Converts a border width in pixels into an amplitude in field units, so the border band
    has about the configured width whatever the region size.
    """
    gy, gx = np.gradient(field.astype(np.float64), ys, xs)
    slope = np.hypot(gx, gy)
    spread = np.abs(field - threshold)
    if not np.isfinite(threshold):
        return float(np.median(slope))
    near = spread <= np.quantile(spread, 0.1)
    return float(np.median(slope[near]))
