"""Write a label mask as a tiled, zlib-compressed, pyramidal uint8 TIFF, tile by tile.

The mask is never whole in memory: a ``render`` callback draws one tile at a time
and tifffile compresses and writes it. Each pyramid level is drawn directly at its
own downsample (``d, 2d, 4d, …``) rather than reduced from the level above, so
every level is the nearest-neighbour, pixel-centre sampling of the same ground
truth that :meth:`razn.data.masks.LabelMask.read_labels` defines: reading level
``k`` back at its downsample returns exactly what ``render`` drew.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from os import PathLike
from pathlib import Path

import numpy as np

from razn.errors import MaskError

RenderFn = Callable[[tuple[float, float], float, tuple[int, int]], np.ndarray]
"""``render(location, downsample, size) -> uint8 [h, w]``: labels of one box.

``location`` is ``(x, y)`` in level-0 slide px, ``size`` is ``(w, h)`` at ``downsample``.
"""


def pyramid_dimensions(
    slide_dimensions: tuple[int, int], downsample: float = 1.0, tile: int = 512
) -> list[tuple[int, int]]:
    """``(w, h)`` of each level: ``ceil(slide / (d·2^k))``, down to one tile's size."""
    sw, sh = slide_dimensions
    sizes = [(math.ceil(sw / downsample), math.ceil(sh / downsample))]
    while max(sizes[-1]) > tile:
        k = len(sizes)
        sizes.append((math.ceil(sw / (downsample * 2**k)), math.ceil(sh / (downsample * 2**k))))
    return sizes


def write_label_tiff(
    path: str | PathLike[str],
    slide_dimensions: tuple[int, int],
    render: RenderFn,
    *,
    downsample: float = 1.0,
    tile: int = 512,
    progress: bool = False,
) -> Path:
    """Write ``render``'s labels for a ``(W, H)`` slide as a pyramidal TIFF at ``path``.

    Level 0 is at ``downsample``; each further level halves the resolution until
    the mask fits in one ``tile × tile`` tile. The file appears only when complete.
    """
    path = Path(path)
    if tile % 16 or tile <= 0:
        raise MaskError(f"tile size must be a positive multiple of 16, got {tile}", path)
    if not (math.isfinite(downsample) and downsample > 0):
        raise MaskError(f"downsample must be a positive number, got {downsample!r}", path)
    sizes = pyramid_dimensions(slide_dimensions, downsample, tile)
    partial = path.with_name(path.name + ".partial")
    try:
        _write_levels(partial, sizes, render, downsample, tile, progress)
        partial.replace(path)
    except OSError as exc:
        raise MaskError(f"cannot write the mask: {exc.strerror or exc}", path) from None
    finally:
        partial.unlink(missing_ok=True)
    return path


def _write_levels(
    path: Path,
    sizes: list[tuple[int, int]],
    render: RenderFn,
    downsample: float,
    tile: int,
    progress: bool,
) -> None:
    import tifffile

    w0, h0 = sizes[0]
    with tifffile.TiffWriter(path, bigtiff=w0 * h0 > 2**31) as tif:
        for k, (w, h) in enumerate(sizes):
            tiles = _tiles(render, downsample * 2**k, (w, h), tile)
            if progress:
                tiles = _with_progress(tiles, (w, h), tile, k)
            tif.write(
                tiles,
                shape=(h, w),
                dtype=np.uint8,
                tile=(tile, tile),
                compression="zlib",
                photometric="minisblack",
                subifds=len(sizes) - 1 if k == 0 else None,
                subfiletype=1 if k else 0,  # 1 = reduced-resolution image
                metadata=None,
            )


def _tiles(
    render: RenderFn, downsample: float, size: tuple[int, int], tile: int
) -> Iterator[np.ndarray]:
    """Full ``tile × tile`` tiles in row-major order (tifffile crops the edges)."""
    w, h = size
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            labels = render((x * downsample, y * downsample), downsample, (tile, tile))
            yield np.ascontiguousarray(labels, dtype=np.uint8)


def _with_progress(
    tiles: Iterator[np.ndarray], size: tuple[int, int], tile: int, level: int
) -> Iterator[np.ndarray]:
    from tqdm import tqdm

    total = math.ceil(size[0] / tile) * math.ceil(size[1] / tile)
    yield from tqdm(tiles, total=total, desc=f"level {level}", unit="tile", leave=False)
