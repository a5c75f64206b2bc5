"""Tissue detection on a thumbnail: Otsu thresholding with morphological clean-up.

Three measures, chosen by ``TissueConfig.method``:

* ``"saturation"`` (default, brightfield H&E/IHC): chroma ``max(R,G,B) − min(R,G,B)``.
  Glass and white background have almost none, even pale tissue has some.
* ``"darkness"``: ``255 − grey``; for stains with little colour.
* ``"fluorescence"``: the brightest channel on a dark background (DAPI and friends),
  thresholded on a log scale.

The measure is smoothed (``smoothing_um``) before thresholding so that sparse
bright nuclei of fluorescence slides, and nuclei in pale H&E, join into regions.

The Otsu threshold is floored at ``min_threshold`` so that a slide that is all
tissue (or all glass) is not split in two by noise. Clean-up closes small gaps,
drops specks smaller than ``min_object_um2`` and fills holes smaller than
``max_hole_um2``; areas are converted to thumbnail pixels with the slide's mpp,
or ``fallback_mpp`` when the slide has none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from razn.config import check_range
from razn.geometry import centre_indices
from razn.slide.base import Slide
from razn.slide.levels import level_size, read_at_downsample

TissueMethod = Literal["saturation", "darkness", "fluorescence"]


@dataclass(frozen=True)
class TissueConfig:
    """How tissue is found on a slide."""

    method: TissueMethod = "saturation"
    """The pixel measure thresholded (see the module docstring)."""
    mpp: float = 8.0
    """Thumbnail resolution in µm/px when the slide's mpp is known."""
    downsample: float | None = None
    """Thumbnail downsample relative to level 0; overrides ``mpp`` when set."""
    max_size: int = 4096
    """Largest thumbnail side in pixels (caps the cost on huge slides)."""
    fallback_mpp: float = 0.5
    """Level-0 µm/px assumed for slides without mpp (to size the thumbnail and the clean-up)."""
    threshold: float | None = None
    """A fixed threshold on the measure (0–255; log-scaled for fluorescence) instead of Otsu's."""
    min_threshold: float = 12.0
    """Lowest threshold Otsu may choose (0–255); keeps blank or all-tissue slides sane."""
    smoothing_um: float = 12.0
    """Gaussian sigma in µm applied to the measure before thresholding (0 disables)."""
    closing_um: float = 16.0
    """Radius in µm of the morphological closing that bridges small gaps."""
    min_object_um2: float = 5000.0
    """Tissue fragments smaller than this (µm²) are dropped."""
    max_hole_um2: float = 20000.0
    """Holes in tissue smaller than this (µm²) are filled."""

    def __post_init__(self) -> None:
        check_range("tissue.mpp", self.mpp, low=1e-3)
        if self.downsample is not None:
            check_range("tissue.downsample", self.downsample, low=1.0)
        check_range("tissue.max_size", self.max_size, low=16)
        check_range("tissue.fallback_mpp", self.fallback_mpp, low=1e-3)
        if self.threshold is not None:
            check_range("tissue.threshold", self.threshold, 0, 255)
        check_range("tissue.min_threshold", self.min_threshold, 0, 255)
        check_range("tissue.smoothing_um", self.smoothing_um, low=0)
        check_range("tissue.closing_um", self.closing_um, low=0)
        check_range("tissue.min_object_um2", self.min_object_um2, low=0)
        check_range("tissue.max_hole_um2", self.max_hole_um2, low=0)


@dataclass(frozen=True)
class TissueMask:
    """A boolean tissue mask over the whole slide.

    Attributes:
        mask: ``(h, w)`` bool, True on tissue; pixel ``[i, j]`` covers level-0
            ``[j·d, (j+1)·d) × [i·d, (i+1)·d)`` with ``d = downsample``.
        downsample: level-0 pixels per mask pixel.
        threshold: the threshold used on the measure (0–255).
    """

    mask: np.ndarray
    downsample: float
    threshold: float

    @property
    def fraction(self) -> float:
        """Share of the slide's area that is tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def sample(
        self, location: tuple[float, float], downsample: float, size: tuple[int, int]
    ) -> np.ndarray:
        """Tissue ``bool [h, w]`` at ``downsample`` for the box at level-0 ``location`` of ``size``
        (nearest neighbour at pixel centres; outside the slide is not tissue)."""
        return self.sample_many([location], downsample, size)[0]

    def sample_many(
        self,
        locations: Sequence[tuple[float, float]],
        downsample: float,
        size: tuple[int, int],
    ) -> np.ndarray:
        """:meth:`sample` for many boxes of one ``size`` at one ``downsample``: ``bool [N, h, w]``
        for the level-0 top-left ``locations`` ``(x, y)``.

        The indices of every box come from one vectorised call; the gather stays two 1-D
        takes per box (rows, then columns): six times faster at 256² than one ``np.ix_``
        gather, three times faster than one broadcast fancy index over the batch."""
        width, height = int(size[0]), int(size[1])
        xy = np.asarray(locations, np.float64).reshape(-1, 2)
        cols = centre_indices(xy[:, 0], downsample, width, self.downsample)
        rows = centre_indices(xy[:, 1], downsample, height, self.downsample)
        mask_height, mask_width = self.mask.shape
        rows_in, cols_in = np.clip(rows, 0, mask_height - 1), np.clip(cols, 0, mask_width - 1)
        out = np.empty((len(xy), height, width), bool)
        for i in range(len(xy)):
            out[i] = self.mask.take(rows_in[i], axis=0).take(cols_in[i], axis=1)
        in_y, in_x = (rows >= 0) & (rows < mask_height), (cols >= 0) & (cols < mask_width)
        if not (in_y.all() and in_x.all()):
            out &= in_y[:, :, None] & in_x[:, None, :]
        return out

    def fraction_in(self, location: tuple[int, int], extent: tuple[float, float]) -> float:
        """Share of tissue in the level-0 box at ``location`` of size ``extent`` (level-0 px)."""
        d = self.downsample
        x0, y0 = int(location[0] // d), int(location[1] // d)
        x1 = max(x0 + 1, math.ceil((location[0] + extent[0]) / d))
        y1 = max(y0 + 1, math.ceil((location[1] + extent[1]) / d))
        window = self.mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)]
        area = (x1 - x0) * (y1 - y0)
        return float(window.sum()) / area


def detect_tissue(slide: Slide, config: TissueConfig | None = None) -> TissueMask:
    """Find tissue on ``slide`` (see the module docstring for the method)."""
    config = config or TissueConfig()
    level0_mpp = (slide.mpp or (config.fallback_mpp, config.fallback_mpp))[0]
    downsample = thumbnail_downsample(slide.dimensions, level0_mpp, config)
    size = level_size(slide.dimensions, downsample)
    thumbnail = read_at_downsample(slide, (0, 0), downsample, size)
    return tissue_from_rgb(thumbnail, downsample, level0_mpp * downsample, config)


def thumbnail_downsample(
    dimensions: tuple[int, int], level0_mpp: float, config: TissueConfig
) -> float:
    """The downsample of the thumbnail tissue is detected on (never below 1)."""
    wanted = config.downsample if config.downsample is not None else config.mpp / level0_mpp
    largest = max(dimensions) / config.max_size
    return max(1.0, wanted, largest)


def tissue_from_rgb(
    rgb: np.ndarray, downsample: float, thumbnail_mpp: float, config: TissueConfig | None = None
) -> TissueMask:
    """Threshold and clean up an RGB thumbnail taken at ``downsample`` (µm/px ``thumbnail_mpp``)."""
    config = config or TissueConfig()
    measure = tissue_measure(rgb, config.method)
    sigma = config.smoothing_um / thumbnail_mpp
    if sigma >= 0.3:
        measure = ndimage.gaussian_filter(measure, sigma, mode="nearest")
    if config.method == "fluorescence":
        measure = log_scale(measure)
    threshold = config.threshold
    if threshold is None:
        threshold = max(otsu_threshold(measure), config.min_threshold)
    mask = measure > threshold
    mask = clean_mask(mask, thumbnail_mpp, config)
    return TissueMask(mask, float(downsample), float(threshold))


def tissue_measure(rgb: np.ndarray, method: TissueMethod) -> np.ndarray:
    """The per-pixel measure (uint8, high on tissue) that the threshold is applied to."""
    rgb = rgb[..., :3]
    if method == "darkness":
        grey = (rgb.astype(np.uint16) @ np.array([77, 150, 29], np.uint16)) >> 8  # ITU-R 601 luma
        return (255 - grey).astype(np.uint8)
    if method not in ("saturation", "fluorescence"):
        raise ValueError(f"unknown tissue method {method!r}")
    # Element-wise over the three planes: 30× faster than reducing the short last axis.
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    brightest = np.maximum(np.maximum(red, green), blue)
    if method == "fluorescence":
        return brightest  # one stained channel carries the signal (e.g. DAPI in blue)
    brightest -= np.minimum(np.minimum(red, green), blue)  # saturation: max − min
    return brightest.astype(np.uint8, copy=False)


def log_scale(values: np.ndarray) -> np.ndarray:
    """Map uint8 ``values`` to uint8 on a log scale (``log1p``), stretching the dark end.

    Fluorescence tissue between bright nuclei is barely above the black glass; on a
    linear scale Otsu separates nuclei from everything else instead of tissue from glass.
    """
    return (np.log1p(values.astype(np.float32)) * (255.0 / np.log(256.0))).astype(np.uint8)


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of uint8 ``values``: pixels above it are one class."""
    histogram = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = histogram.sum()
    if total == 0:
        return 0.0
    levels = np.arange(256, dtype=np.float64)
    weight_low = np.cumsum(histogram)
    weight_high = total - weight_low
    cumulative_mean = np.cumsum(histogram * levels)
    mean_low = cumulative_mean / np.maximum(weight_low, 1)
    mean_high = (cumulative_mean[-1] - cumulative_mean) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(np.argmax(between))


def clean_mask(mask: np.ndarray, thumbnail_mpp: float, config: TissueConfig) -> np.ndarray:
    """Close gaps, drop small specks and fill small holes (sizes in µm, see TissueConfig)."""
    pixel_area = thumbnail_mpp**2
    radius = round(config.closing_um / thumbnail_mpp)
    if radius >= 1:
        structure = _disk(radius)
        # Pad so that closing does not erode tissue touching the border.
        padded = np.pad(mask, radius, mode="edge")
        mask = ndimage.binary_closing(padded, structure)[radius:-radius, radius:-radius]
    mask = _drop_small(mask, config.min_object_um2 / pixel_area)
    holes = ~mask
    small_holes = holes & ~_drop_small(holes, config.max_hole_um2 / pixel_area, keep_border=True)
    return mask | small_holes


def _drop_small(mask: np.ndarray, min_pixels: float, keep_border: bool = False) -> np.ndarray:
    """``mask`` without connected components smaller than ``min_pixels``."""
    if min_pixels <= 1 or not mask.any():
        return mask
    labels, count = ndimage.label(mask)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= min_pixels
    if keep_border:  # background touching the border is never a hole
        border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        keep[np.unique(border)] = True
    keep[0] = False
    return keep[labels]


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius
