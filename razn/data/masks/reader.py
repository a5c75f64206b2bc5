"""Ground-truth label masks at any downsample of their slide, read lazily.

Conventions (the same as :mod:`razn.slide`):

* a ``location`` is ``(x, y)`` in level-0 pixels of the **slide**; a ``size`` is
  ``(w, h)`` in pixels at the requested downsample; arrays are indexed ``[y, x]``;
* a ``downsample`` ``d`` means one pixel covers ``d × d`` level-0 slide pixels, so mask
  pixel ``[i, j]`` of a level at downsample ``d`` covers level-0
  ``[j·d, (j+1)·d) × [i·d, (i+1)·d)``;
* values are integer class labels; ``255`` means "ignore" (no loss there).

Sampling is **nearest neighbour at pixel centres**: output pixel ``[i, j]`` of
:meth:`LabelMask.read_labels` takes the label of the mask pixel that contains the
level-0 point ``(x + (j + 0.5)·d, y + (i + 0.5)·d)``. Points outside the mask read
as ``0`` (background), so a read may run past the mask's edges.

The mask's downsample is inferred from its size: mask sides may be the floor or the
ceiling of ``slide side / d`` (as pyramid writers round either way), and the x and y
sides must agree on one ``d``. See :func:`infer_downsample`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from razn.data.masks.formats import LevelArray, open_levels, reading
from razn.errors import MaskError
from razn.geometry import centre_indices

IGNORE = 255
"""The label value that marks pixels to ignore in training and evaluation."""

_EPS = 1e-9
_READ_ALL_MAX_PIXELS = 1 << 28  # 256 Mpx: beyond this, read_all is a mistake


def infer_downsample(
    slide_dimensions: tuple[int, int],
    mask_dimensions: tuple[int, int],
    path: str | PathLike[str] | None = None,
) -> float:
    """The downsample ``d`` at which a ``(w, h)`` mask covers a ``(W, H)`` slide.

    Rule: each mask side must be ``floor`` or ``ceil`` of ``slide side / d`` for one
    common ``d >= 1`` (a mask is never finer than the slide). Among the allowed
    values, ``d`` is, in order of preference, the integer nearest the mean ratio,
    ``W / w``, ``H / h``, or the middle of the allowed range. A 1000×750 slide with
    a 333×250 mask gives ``d = 3``; with a 333×300 mask it raises :class:`MaskError`.
    """
    (sw, sh), (w, h) = slide_dimensions, mask_dimensions
    if min(sw, sh, w, h) < 1:
        raise MaskError(f"cannot match a {w}×{h} mask to a {sw}×{sh} slide: empty size", path)
    ratios = (sw / w, sh / h)
    lo = max(sw / (w + 1), sh / (h + 1))  # exclusive bounds on d allowed by both sides
    hi = min(_upper(sw, w), _upper(sh, h))
    found = f"mask is {w}×{h} px but slide is {sw}×{sh} px"
    if lo >= hi:
        raise MaskError(
            f"{found}: the x ratio {ratios[0]:.6g} and y ratio {ratios[1]:.6g} disagree "
            "(each mask side must be slide side / d, rounded, for one downsample d) — "
            "is this the mask of another slide?",
            path,
        )
    if hi <= 1:
        raise MaskError(
            f"{found}: the mask is larger than the slide (ratios {ratios[0]:.6g}, "
            f"{ratios[1]:.6g} < 1) — is this the mask of another slide?",
            path,
        )
    mean = (ratios[0] + ratios[1]) / 2
    longest = ratios if w >= h else ratios[::-1]
    middle = (max(lo, 1.0) + hi) / 2
    for d in (float(max(1, round(mean))), *longest, middle):
        if lo < d < hi and d >= 1:
            return d
    return max(1.0, lo + (hi - lo) / 2)  # only for hi == inf with tiny masks


def _upper(slide: int, mask: int) -> float:
    """Exclusive upper bound on ``d`` such that ``ceil(slide / d) >= mask``."""
    return slide / (mask - 1) if mask > 1 else math.inf


@dataclass(frozen=True)
class MaskLevel:
    """One pyramid level of a mask.

    Attributes:
        dimensions: ``(w, h)`` in pixels of this level.
        downsample: level-0 slide pixels per pixel of this level.
    """

    dimensions: tuple[int, int]
    downsample: float


class LabelMask:
    """A label mask aligned with a slide, read lazily level by level.

    Open with :func:`open_mask`. Use as a context manager (or call :meth:`close`) to
    release a TIFF file. Pickling reopens the file, so a mask can go to workers.

    Attributes:
        path: the mask file or zarr directory.
        slide_dimensions: ``(W, H)`` of the slide's level 0.
        levels: each level's dimensions and downsample, finest first.
    """

    def __init__(
        self,
        path: Path,
        slide_dimensions: tuple[int, int],
        arrays: list[LevelArray],
        close: Callable[[], None],
    ) -> None:
        self.path = path
        self.slide_dimensions = slide_dimensions
        self._close = close
        self._arrays, self.levels = _fit_levels(path, slide_dimensions, arrays)

    @property
    def downsample(self) -> float:
        """Level-0 slide pixels per pixel of the mask's finest level."""
        return self.levels[0].downsample

    @property
    def shape(self) -> tuple[int, int]:
        """``(h, w)`` of the finest level (numpy order)."""
        w, h = self.levels[0].dimensions
        return h, w

    @property
    def dtype(self) -> np.dtype:
        """The stored dtype (reads always return uint8)."""
        return self._arrays[0].dtype

    def read_labels(
        self, location: tuple[float, float], downsample: float, size: tuple[int, int]
    ) -> np.ndarray:
        """Labels ``uint8 [h, w]`` of a box: ``location`` in level-0 px, ``size`` at ``downsample``.

        Nearest neighbour at pixel centres, from the coarsest level whose downsample
        is ``<= downsample`` (the finest level if none is); outside the mask reads 0.
        """
        w, h = _check_size(size, self.path)
        _check_downsample(downsample, self.path)
        k = self._level_for(downsample)
        level, d = self._arrays[k], self.levels[k].downsample
        rows = centre_indices(location[1], downsample, h, d)
        cols = centre_indices(location[0], downsample, w, d)
        out = np.zeros((h, w), np.uint8)
        in_y = (rows >= 0) & (rows < level.shape[0])
        in_x = (cols >= 0) & (cols < level.shape[1])
        if in_y.any() and in_x.any():
            uy, iy = np.unique(rows[in_y], return_inverse=True)
            ux, ix = np.unique(cols[in_x], return_inverse=True)
            with reading(self.path, "read"):
                block = level.take(uy, ux)
            out[np.ix_(in_y, in_x)] = self._as_labels(block)[np.ix_(iy, ix)]
        return out

    def read_all(self, downsample: float | None = None) -> np.ndarray:
        """The whole mask at ``downsample`` (default: the finest level's), for small masks.

        At a level's own downsample the result has that level's dimensions; at any
        other downsample it covers the slide: ``ceil(W / d) × ceil(H / d)``.
        """
        d = self.downsample if downsample is None else _check_downsample(downsample, self.path)
        match = [lv for lv in self.levels if abs(lv.downsample - d) <= _EPS * d]
        sw, sh = self.slide_dimensions
        size = match[0].dimensions if match else (math.ceil(sw / d), math.ceil(sh / d))
        if size[0] * size[1] > _READ_ALL_MAX_PIXELS:
            raise MaskError(
                f"read_all at downsample {d:g} would be {size[0]}×{size[1]} px; "
                "use read_labels on regions, or a larger downsample",
                self.path,
            )
        return self.read_labels((0, 0), d, size)

    def class_values(self, level: int = 0) -> set[int]:
        """The label values present in ``level`` (default the finest), scanned chunk by chunk.

        A coarse level is faster to scan but may miss small regions.
        """
        values: set[int] = set()
        for block in self._blocks(self._arrays[level]):
            if block.dtype == np.uint8:  # a histogram is ~10x faster than sorting
                present = np.flatnonzero(np.bincount(block.ravel(), minlength=256))
            else:
                present = np.unique(block)
            values.update(int(v) for v in present)
        return values

    def validate(self, num_classes: int) -> None:
        """Raise MaskError unless every value is in ``0 .. num_classes - 1`` or 255 (ignore)."""
        bad = sorted(v for v in self.class_values() if v != IGNORE and not 0 <= v < num_classes)
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (" …" if len(bad) > 10 else "")
            raise MaskError(
                f"mask has class values {shown} outside 0..{num_classes - 1} "
                f"(255 = ignore); expected labels of {num_classes} classes — "
                "check data.class_names or remap the mask",
                self.path,
            )

    def close(self) -> None:
        """Release the underlying file; later reads fail."""
        self._close()

    def __enter__(self) -> LabelMask:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return open_mask, (self.path, self.slide_dimensions)

    def __repr__(self) -> str:
        dims = ", ".join(
            f"{lv.dimensions[0]}×{lv.dimensions[1]}@{lv.downsample:g}" for lv in self.levels
        )
        return f"LabelMask({str(self.path)!r}, levels=[{dims}])"

    def _level_for(self, downsample: float) -> int:
        adequate = [
            k for k, lv in enumerate(self.levels) if lv.downsample <= downsample * (1 + _EPS)
        ]
        return adequate[-1] if adequate else 0

    def _as_labels(self, block: np.ndarray) -> np.ndarray:
        """``block`` as uint8, refusing values that uint8 cannot hold."""
        if block.dtype == np.uint8 or block.size == 0:
            return block.astype(np.uint8, copy=False)
        lo, hi = int(block.min()), int(block.max())
        if lo < 0 or hi > 255:
            raise MaskError(
                f"mask holds value {lo if lo < 0 else hi} (dtype {block.dtype}); "
                "expected class values 0..254 and 255 = ignore — remap the mask to uint8",
                self.path,
            )
        return block.astype(np.uint8)

    def _blocks(self, level: LevelArray) -> Iterator[np.ndarray]:
        """Chunk-aligned blocks of ~16 Mpx covering ``level``."""
        (h, w), (ch, cw) = level.shape, level.chunks
        ch, cw, budget = max(ch, 1), max(cw, 1), 1 << 24
        if ch * w <= budget:  # whole rows of chunks
            step_y, step_x = ch * max(1, budget // max(ch * w, 1)), max(w, 1)
        else:  # a very wide level: one row of chunks, cut into runs of chunks
            step_y, step_x = ch, cw * max(1, budget // (ch * cw))
        for y in range(0, h, step_y):
            for x in range(0, w, step_x):
                with reading(self.path, "read"):
                    block = level.block(y, min(y + step_y, h), x, min(x + step_x, w))
                yield block  # outside `reading`: the caller's errors are not the file's


def open_mask(path: str | PathLike[str], slide_dimensions: tuple[int, int]) -> LabelMask:
    """Open a label mask (TIFF, PNG or zarr) for a slide of level-0 size ``(W, H)``.

    The mask's downsample is inferred from its size (see :func:`infer_downsample`).
    """
    path = Path(path)
    arrays, close = open_levels(path)
    try:
        return LabelMask(path, (int(slide_dimensions[0]), int(slide_dimensions[1])), arrays, close)
    except BaseException:
        close()
        raise


def _fit_levels(
    path: Path, slide_dimensions: tuple[int, int], arrays: list[LevelArray]
) -> tuple[list[LevelArray], tuple[MaskLevel, ...]]:
    """Each level's downsample relative to the slide; levels that do not fit are dropped."""
    h0, w0 = arrays[0].shape
    d0 = infer_downsample(slide_dimensions, (w0, h0), path)
    kept, levels = [arrays[0]], [MaskLevel((w0, h0), d0)]
    for k, array in enumerate(arrays[1:], start=1):
        h, w = array.shape
        try:
            d = d0 * infer_downsample((w0, h0), (w, h))
        except MaskError:
            # A level that is not a whole-image reduction cannot be mapped; the
            # finest level still serves every read, only more slowly.
            warnings.warn(f"{path}: ignoring mask level {k} ({w}×{h})", stacklevel=3)
            continue
        if d > levels[-1].downsample:
            kept.append(array)
            levels.append(MaskLevel((w, h), d))
    return kept, tuple(levels)


def _check_downsample(downsample: float, path: Path) -> float:
    try:
        value = float(downsample)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise MaskError(f"downsample must be a positive number, got {downsample!r}", path)
    return value


def _check_size(size: tuple[int, int], path: Path) -> tuple[int, int]:
    w, h = (int(n) for n in size)
    if w < 0 or h < 0 or (w, h) != tuple(size):
        raise MaskError(f"size must be two non-negative integers (w, h), got {size!r}", path)
    return w, h
