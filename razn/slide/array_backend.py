"""Slides held as arrays: in memory (numpy) or on disk as a zarr pyramid.

Used for tests, for generated data and for images that are not slide files. A
zarr slide is a group whose arrays ``"0"``, ``"1"``, … are the levels (finest
first, ``(h, w, 3|4)`` uint8) and whose attributes may hold ``mpp`` (``[x, y]``),
``objective_power``, ``vendor`` and ``properties``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from razn.errors import SlideError
from razn.slide.base import Location, Size, Slide


class ArraySlide(Slide):
    """A slide whose levels are numpy (or zarr) arrays of shape ``(h, w, 3|4)``, uint8.

    Level downsamples are computed as OpenSlide does: the mean of the width and
    height ratios to level 0. A region starting at level-0 ``x`` starts at column
    ``floor(x / downsample)`` of the level.

    Args:
        levels: the pyramid, finest first.
        mpp: microns per level-0 pixel ``(x, y)``, if known.
        path: where the arrays came from, if anywhere.
        vendor, objective_power, properties, tile_size: optional metadata.
        mpp_override: replaces ``mpp`` (see :class:`~razn.slide.base.Slide`).
    """

    backend: ClassVar[str] = "array"

    def __init__(
        self,
        levels: Sequence[Any],
        mpp: tuple[float, float] | None = None,
        *,
        path: str | Path | None = None,
        vendor: str = "razn-array",
        objective_power: float | None = None,
        properties: Mapping[str, str] | None = None,
        tile_size: Size | None = None,
        mpp_override: tuple[float, float] | None = None,
    ):
        super().__init__(path, mpp_override)
        if not levels:
            raise SlideError("an array slide needs at least one level", path)
        for index, level in enumerate(levels):
            if level.ndim != 3 or level.shape[2] not in (3, 4) or level.dtype != np.uint8:
                raise SlideError(
                    f"level {index} must be a (h, w, 3|4) uint8 array, got {level.shape} {level.dtype}",
                    path,
                )
        self._levels = list(levels)
        self._native_mpp = None if mpp is None else (float(mpp[0]), float(mpp[1]))
        self._vendor = vendor
        self._objective_power = objective_power
        self._properties = dict(properties or {})
        self._tile_size = tile_size
        width, height = self.level_dimensions[0]
        self._downsamples = tuple((width / w + height / h) / 2.0 for w, h in self.level_dimensions)

    @classmethod
    def from_zarr(cls, path: str | Path, mpp: tuple[float, float] | None = None) -> ArraySlide:
        """Open a zarr group written by :func:`write_zarr_slide` (arrays are read lazily)."""
        import zarr

        from razn.zarr_nodes import child_array

        path = Path(path)
        try:
            group = zarr.open_group(str(path), mode="r")
        except Exception as exc:  # zarr raises several unrelated types for a bad store
            raise SlideError(f"not a zarr slide group: {exc}", path) from None
        names = sorted((name for name in group.array_keys() if name.isdigit()), key=int)
        if not names:
            raise SlideError("zarr group has no level arrays named 0, 1, …", path)
        attrs: dict[str, Any] = dict(group.attrs)
        chunks = child_array(group, names[0], path, SlideError).chunks  # (h, w, channels)
        return cls(
            [group[name] for name in names],
            mpp=tuple(attrs["mpp"]) if attrs.get("mpp") else None,
            path=path,
            vendor=str(attrs.get("vendor", "razn-zarr")),
            objective_power=attrs.get("objective_power"),
            properties={str(k): str(v) for k, v in attrs.get("properties", {}).items()},
            tile_size=(chunks[1], chunks[0]),
            mpp_override=mpp,
        )

    @property
    def level_dimensions(self) -> tuple[Size, ...]:
        return tuple((int(a.shape[1]), int(a.shape[0])) for a in self._levels)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._downsamples

    @property
    def properties(self) -> Mapping[str, str]:
        return self._properties

    @property
    def vendor(self) -> str | None:
        return self._vendor

    @property
    def native_mpp(self) -> tuple[float, float] | None:
        return self._native_mpp

    @property
    def objective_power(self) -> float | None:
        return self._objective_power

    @property
    def tile_size(self) -> Size | None:
        return self._tile_size

    def _read_region(self, location: Location, level: int, size: Size) -> np.ndarray:
        array = self._levels[level]
        downsample = self._downsamples[level]
        x0 = int(np.floor(location[0] / downsample))
        y0 = int(np.floor(location[1] / downsample))
        w, h = size
        channels = array.shape[2]
        out = np.zeros((h, w, 4), np.uint8)  # transparent outside the level
        height, width = array.shape[:2]
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + w, width), min(y0 + h, height)
        if sx1 > sx0 and sy1 > sy0:
            patch = np.asarray(array[sy0:sy1, sx0:sx1])
            target = out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
            target[..., :channels] = patch
            if channels == 3:
                target[..., 3] = 255
        return out


def write_zarr_slide(
    path: str | Path,
    levels: Sequence[np.ndarray],
    mpp: tuple[float, float] | None = None,
    chunk: int = 256,
    **attrs: Any,
) -> Path:
    """Write ``levels`` (finest first, ``(h, w, 3)`` uint8) as a zarr slide group at ``path``."""
    import zarr

    path = Path(path)
    group = zarr.open_group(str(path), mode="w")
    for index, level in enumerate(levels):
        group.create_array(
            str(index), data=np.asarray(level, np.uint8), chunks=(chunk, chunk, level.shape[2])
        )
    group.attrs.update({"mpp": list(mpp) if mpp else None, **attrs})
    return path
