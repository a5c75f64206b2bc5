"""Working levels: read any downsample of level 0 from whatever pyramid a slide has.

The method works at downsamples it chooses (for example 8, 4, 2, 1 relative to
level 0). A slide's native pyramid may lack them: single-level slides, pyramids
with downsamples such as 2.0005 or 4.0161, levels that stop early. A working
downsample ``d`` is read from the **nearest finer native level** (the coarsest
level whose downsample is at most ``d``) and resized with area averaging. A native
level within ``rel_tol`` of ``d`` counts as exact and is read without resizing:
``2.0005`` is what OpenSlide reports for a level of ``ceil(W / 2)`` pixels.

A region at working downsample ``d`` starting at level-0 ``(x, y)`` with size
``(w, h)`` covers level-0 pixels ``[x, x + w·d) × [y, y + h·d)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from razn.errors import SlideError

if TYPE_CHECKING:  # annotations only: razn.slide.base imports this module
    from razn.slide.base import Location, Size, Slide

DEFAULT_REL_TOL = 2e-3
"""Relative difference under which a native downsample counts as equal to a working one."""


@dataclass(frozen=True)
class LevelPlan:
    """How one working downsample is read from a slide's native pyramid.

    Attributes:
        downsample: the working downsample (level-0 pixels per working pixel).
        native_level: the native pyramid level read from.
        native_downsample: that level's downsample.
        exact: True when the native level is read as is, without resizing.
    """

    downsample: float
    native_level: int
    native_downsample: float
    exact: bool

    @property
    def scale(self) -> float:
        """Native pixels per working pixel (1.0 when exact, > 1 otherwise)."""
        return 1.0 if self.exact else self.downsample / self.native_downsample


def plan_level(
    level_downsamples: Sequence[float], downsample: float, rel_tol: float = DEFAULT_REL_TOL
) -> LevelPlan:
    """Choose the native level to read working ``downsample`` from (see the module docstring)."""
    if not downsample >= 1.0 - rel_tol:
        raise SlideError(f"working downsample must be >= 1 (no upsampling), got {downsample}")
    best = 0
    for level, native in enumerate(level_downsamples):
        if native <= downsample * (1.0 + rel_tol):
            best = level
    native = float(level_downsamples[best])
    exact = abs(native / downsample - 1.0) <= rel_tol
    return LevelPlan(float(downsample), best, native, exact)


def plan_levels(
    slide: Slide, downsamples: Sequence[float], rel_tol: float = DEFAULT_REL_TOL
) -> tuple[LevelPlan, ...]:
    """:func:`plan_level` for each working downsample, in the given order."""
    return tuple(plan_level(slide.level_downsamples, d, rel_tol) for d in downsamples)


def level_size(dimensions: Size, downsample: float) -> Size:
    """``(w, h)`` of the whole slide at a working downsample (partial pixels count)."""
    return (
        math.ceil(dimensions[0] / downsample - 1e-9),
        math.ceil(dimensions[1] / downsample - 1e-9),
    )


def read_at_downsample(
    slide: Slide,
    location: Location,
    downsample: float,
    size: Size,
    plan: LevelPlan | None = None,
) -> np.ndarray:
    """Read ``size`` pixels at working ``downsample`` starting at level-0 ``location``.

    Returns:
        RGB ``uint8`` array ``(h, w, 3)``; outside the slide is white.
    """
    if plan is None:
        plan = plan_level(slide.level_downsamples, downsample)
    elif plan.downsample != downsample:
        raise ValueError(f"plan is for downsample {plan.downsample}, asked for {downsample}")
    if plan.exact:
        return slide.read_region(location, plan.native_level, size)
    scale = plan.scale
    w, h = int(size[0]), int(size[1])
    native_size = (math.ceil(w * scale - 1e-9), math.ceil(h * scale - 1e-9))
    native = slide.read_region(location, plan.native_level, native_size)
    return resize_area(native, (w, h), (0.0, 0.0, w * scale, h * scale))


def resize_area(
    image: np.ndarray, size: Size, box: tuple[float, float, float, float] | None = None
) -> np.ndarray:
    """Area-average (box filter) ``image[box]`` to ``size`` ``(w, h)``; box in source pixels."""
    resized = Image.fromarray(image).resize(
        (int(size[0]), int(size[1])), Image.Resampling.BOX, box=box
    )
    return np.asarray(resized)
