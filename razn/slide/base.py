"""The slide interface every backend implements.

Coordinates follow OpenSlide everywhere in razn:

* ``location`` is ``(x, y)`` of the region's top-left corner in **level-0 pixels**;
* ``size`` is ``(w, h)`` in pixels **of the level being read**;
* returned arrays are RGB ``uint8`` indexed ``[y, x, channel]``; transparent pixels
  (outside the slide, missing tiles) are composited onto white.

A level's ``downsample`` is the number of level-0 pixels one of its pixels spans;
it is not assumed to be a power of two (2.0005 and 4.0161 are real).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import numpy as np

from razn.errors import SlideError
from razn.slide.levels import read_at_downsample

Size = tuple[int, int]
Location = tuple[int, int]


class Slide(ABC):
    """A pyramidal whole-slide image, read-only.

    Subclasses implement the abstract properties and :meth:`_read_region`; the
    public methods validate their arguments once here.

    Args:
        path: the file the slide was opened from, or None for in-memory slides.
        mpp: an override of the microns per pixel at level 0 ``(x, y)``, used when
            the file's own value is missing or known to be wrong.
    """

    backend: ClassVar[str] = "abstract"

    def __init__(self, path: str | Path | None = None, mpp: tuple[float, float] | None = None):
        self.path = None if path is None else Path(path)
        if mpp is not None and (len(mpp) != 2 or min(mpp) <= 0):
            raise SlideError(f"mpp override must be two positive numbers, got {mpp!r}", path)
        self._mpp_override = None if mpp is None else (float(mpp[0]), float(mpp[1]))

    # -- geometry -----------------------------------------------------------
    @property
    @abstractmethod
    def level_dimensions(self) -> tuple[Size, ...]:
        """``(width, height)`` of every level, finest (level 0) first."""

    @property
    @abstractmethod
    def level_downsamples(self) -> tuple[float, ...]:
        """Level-0 pixels per pixel of every level (1.0 for level 0)."""

    @property
    def dimensions(self) -> Size:
        """``(width, height)`` of level 0 in pixels."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def name(self) -> str:
        """The slide's file name without its extension (``"array"`` for in-memory slides)."""
        if self.path is None:
            return "array"
        return self.path.name.rsplit(".", 1)[0] if "." in self.path.name else self.path.name

    # -- metadata -----------------------------------------------------------
    @property
    @abstractmethod
    def properties(self) -> Mapping[str, str]:
        """The backend's raw metadata, as strings."""

    @property
    @abstractmethod
    def vendor(self) -> str | None:
        """The format or scanner vendor (``"aperio"``, ``"hamamatsu"``, ``"generic-tiff"``, …)."""

    @property
    @abstractmethod
    def native_mpp(self) -> tuple[float, float] | None:
        """Microns per level-0 pixel ``(x, y)`` as recorded in the file, or None."""

    @property
    def mpp(self) -> tuple[float, float] | None:
        """Microns per level-0 pixel ``(x, y)``: the override if given, else the file's, else None."""
        return self._mpp_override if self._mpp_override is not None else self.native_mpp

    @property
    def mpp_source(self) -> str | None:
        """Where :attr:`mpp` comes from: ``"override"``, ``"slide"`` or None when missing."""
        if self._mpp_override is not None:
            return "override"
        return "slide" if self.native_mpp is not None else None

    @property
    def objective_power(self) -> float | None:
        """The scanner's objective magnification, if recorded."""
        return None

    @property
    def tile_size(self) -> Size | None:
        """The storage tile ``(w, h)`` of level 0, if the format is tiled."""
        return None

    @property
    def associated_images(self) -> tuple[str, ...]:
        """Names of the non-pyramid images stored with the slide (label, macro, thumbnail)."""
        return ()

    # -- pixels -------------------------------------------------------------
    def read_region(self, location: Location, level: int, size: Size) -> np.ndarray:
        """Read ``size`` pixels of native ``level`` starting at level-0 ``location``.

        Returns:
            ``uint8`` array of shape ``(h, w, 3)``; pixels outside the slide are white.
        """
        if not 0 <= level < self.level_count:
            raise SlideError(f"level {level} out of range 0..{self.level_count - 1}", self.path)
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise SlideError(f"region size must be positive, got {size!r}", self.path)
        region = self._read_region((int(location[0]), int(location[1])), level, (w, h))
        return composite_on_white(region)

    @abstractmethod
    def _read_region(self, location: Location, level: int, size: Size) -> np.ndarray:
        """Backend hook: an ``(h, w, 3)`` or straight-alpha ``(h, w, 4)`` uint8 array."""

    def get_best_level_for_downsample(self, downsample: float, rel_tol: float = 2e-3) -> int:
        """The coarsest native level whose downsample is at most ``downsample`` (within ``rel_tol``)."""
        best = 0
        for level, level_downsample in enumerate(self.level_downsamples):
            if level_downsample <= downsample * (1.0 + rel_tol):
                best = level
        return best

    def get_thumbnail(self, max_size: Size) -> np.ndarray:
        """The whole slide scaled to fit in ``max_size`` ``(w, h)``, aspect ratio kept."""
        width, height = self.dimensions
        downsample = max(width / max_size[0], height / max_size[1], 1.0)
        size = (max(1, round(width / downsample)), max(1, round(height / downsample)))
        return read_at_downsample(self, (0, 0), downsample, size)

    # -- lifetime -----------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release the backend's file handles."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.dimensions
        return f"{type(self).__name__}({str(self.path) if self.path else self.name!r}, {w}x{h}, levels={self.level_count})"


def composite_on_white(region: np.ndarray) -> np.ndarray:
    """RGB ``uint8`` from an RGB or straight-alpha RGBA array, compositing onto white.

    openslide-python returns straight (not premultiplied) RGBA, with transparent
    pixels (outside the slide, missing tiles) as ``(0, 0, 0, 0)``; they become white.
    """
    if region.ndim != 3 or region.shape[2] not in (3, 4):
        raise ValueError(f"expected an (h, w, 3|4) array, got shape {region.shape}")
    if region.shape[2] == 3:
        return np.ascontiguousarray(region, dtype=np.uint8)
    rgb = np.ascontiguousarray(region[..., :3])
    partial = region[..., 3] != 255
    if not partial.any():  # the common case: fully opaque, nothing to blend
        return rgb
    # Blend only the pixels that need it: a read overlapping the slide's edge is mostly
    # opaque, and blending all of it in uint32 cost seconds on a 4096² thumbnail.
    alpha = region[..., 3][partial][:, None].astype(np.uint32)
    blended = rgb[partial].astype(np.uint32) * alpha + 255 * (255 - alpha)
    rgb[partial] = ((blended + 127) // 255).astype(np.uint8)
    return rgb
