"""The slide layer: one interface over OpenSlide files and array/zarr pyramids.

``open_slide(path)`` picks the backend from a ``{name: class}`` table: zarr
directories go to :class:`ArraySlide`, everything else to :class:`OpenSlideSlide`.
See :mod:`razn.slide.base` for the coordinate conventions.
"""

from __future__ import annotations

from pathlib import Path

from razn.errors import SlideError
from razn.slide.array_backend import ArraySlide, write_zarr_slide
from razn.slide.base import Location, Size, Slide
from razn.slide.levels import LevelPlan, level_size, plan_level, plan_levels, read_at_downsample
from razn.slide.openslide_backend import OpenSlideSlide

BACKENDS: dict[str, type[Slide]] = {"openslide": OpenSlideSlide, "array": ArraySlide}


def open_slide(
    path: str | Path, mpp: tuple[float, float] | None = None, backend: str | None = None
) -> Slide:
    """Open a slide file (or zarr slide directory) with the right backend.

    Args:
        path: the slide.
        mpp: optional ``(x, y)`` µm/px override, for slides whose metadata lacks or
            misstates it.
        backend: force ``"openslide"`` or ``"array"``; by default zarr directories
            (``*.zarr`` or holding ``zarr.json``/``.zgroup``) are array slides.
    """
    path = Path(path)
    name = backend or _guess_backend(path)
    if name not in BACKENDS:
        raise SlideError(f"unknown slide backend {name!r}; choose from {', '.join(BACKENDS)}", path)
    if name == "array":
        return ArraySlide.from_zarr(path, mpp=mpp)
    return OpenSlideSlide(path, mpp=mpp)


def _guess_backend(path: Path) -> str:
    if path.suffix == ".zarr" or (path / "zarr.json").exists() or (path / ".zgroup").exists():
        return "array"
    return "openslide"


__all__ = [
    "BACKENDS",
    "ArraySlide",
    "LevelPlan",
    "Location",
    "OpenSlideSlide",
    "Size",
    "Slide",
    "level_size",
    "open_slide",
    "plan_level",
    "plan_levels",
    "read_at_downsample",
    "write_zarr_slide",
]
