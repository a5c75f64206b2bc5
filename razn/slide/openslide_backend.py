"""Slides read through OpenSlide (SVS, NDPI, MRXS, SCN, Philips/generic TIFF, DICOM, …).

This is the only module in razn that imports ``openslide``. Every OpenSlide
failure becomes a :class:`~razn.errors.SlideError` naming the file. OpenSlide
errors are sticky (after a failed read even ``properties`` raise), so metadata is
read once at open time and a failed read marks the handle broken.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np

from razn.errors import SlideError
from razn.slide.base import Location, Size, Slide
from razn.slide.reasons import explain


def _openslide():  # imported lazily: loading the shared library costs ~50 ms
    import openslide

    return openslide


class OpenSlideSlide(Slide):
    """A slide file opened with openslide-python (``openslide.OpenSlide``, never the PIL fallback).

    Args:
        path: the slide file.
        mpp: optional ``(x, y)`` µm/px override of the file's value.
    """

    backend: ClassVar[str] = "openslide"

    def __init__(self, path: str | Path, mpp: tuple[float, float] | None = None):
        super().__init__(path, mpp)
        check_is_readable_file(self.path)
        openslide = _openslide()
        try:
            self._handle = openslide.OpenSlide(str(self.path))
            # Read all metadata now: a later read error poisons the handle.
            self._properties = dict(self._handle.properties)
            self._level_dimensions = tuple(tuple(d) for d in self._handle.level_dimensions)
            self._level_downsamples = tuple(float(d) for d in self._handle.level_downsamples)
            self._associated = tuple(self._handle.associated_images.keys())
        except openslide.OpenSlideUnsupportedFormatError:
            raise SlideError(
                "unsupported or unrecognised slide format (OpenSlide cannot open it)", self.path
            ) from None
        except (openslide.OpenSlideError, OSError, ValueError) as exc:
            raise SlideError(f"cannot open slide: {explain(_reason(exc))}", self.path) from None
        self._broken: str | None = None

    @property
    def level_dimensions(self) -> tuple[Size, ...]:
        return self._level_dimensions  # type: ignore[return-value]

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._level_downsamples

    @property
    def properties(self) -> Mapping[str, str]:
        return self._properties

    @property
    def vendor(self) -> str | None:
        return self._properties.get("openslide.vendor")

    @property
    def native_mpp(self) -> tuple[float, float] | None:
        x = _positive_float(self._properties.get("openslide.mpp-x"))
        y = _positive_float(self._properties.get("openslide.mpp-y"))
        if x is None and y is None:
            return None
        return (x or y, y or x)  # type: ignore[return-value]

    @property
    def objective_power(self) -> float | None:
        return _positive_float(self._properties.get("openslide.objective-power"))

    @property
    def tile_size(self) -> Size | None:
        w = self._properties.get("openslide.level[0].tile-width")
        h = self._properties.get("openslide.level[0].tile-height")
        if w is None or h is None:
            return None
        return (int(w), int(h))

    @property
    def associated_images(self) -> tuple[str, ...]:
        return self._associated

    def _read_region(self, location: Location, level: int, size: Size) -> np.ndarray:
        if self._broken is not None:
            # The first failure, whichever reader thread asks next: which read of a batch
            # hits the sticky error first depends on thread timing, the message must not.
            raise SlideError(f"{self._broken} (the slide is unusable after it)", self.path)
        openslide = _openslide()
        try:
            image = self._handle.read_region(location, level, size)
        except openslide.OpenSlideError as exc:
            self._broken = (
                f"read failed at location {location} level {level} size {size}: "
                f"{explain(_reason(exc))}"
            )
            raise SlideError(self._broken, self.path) from None
        return np.asarray(image)

    def close(self) -> None:
        self._handle.close()


def check_is_readable_file(path: Path | None) -> None:
    """Raise :class:`SlideError` when ``path`` is missing, a directory, or empty."""
    if path is None:
        raise SlideError("no path given")
    if not path.exists():
        raise SlideError("no such file", path)
    if path.is_dir():
        raise SlideError("is a directory, not a slide file", path)
    if path.stat().st_size == 0:
        raise SlideError("file is empty", path)


def _positive_float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number > 0 else None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    # OpenSlide sometimes prefixes "Reading <path>: "; the path is already in our message.
    return text.split(": ", 1)[1] if text.startswith("Reading ") and ": " in text else text
