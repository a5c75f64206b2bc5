"""Tile-by-tile writer of a slide pyramid (JPEG, Aperio-flavoured) and its mask pyramid (deflate).

Level 0 arrives as horizontal strips of one tile row; no level is ever held in memory.
Each slide level's tiles go straight into the TIFF while its 2x2-reduced strips are
appended to a raw temporary file, the strip source of the next level. The labels of every
mask level are sampled from the level-0 strips as they pass and kept in raw files too;
the mask is written after the slide, so no threads are needed. Temporary files live next
to the output, never in ``/tmp`` (often a RAM disk): about 2.3 bytes per level-0 pixel
(5.8 GB for 50,000 x 50,000).

Level ``k`` has size ``ceil(W / 2**k) x ceil(H / 2**k)``; its pixel ``[i, j]`` stands for the
level-0 block ``[j * 2**k, (j + 1) * 2**k) x [i * 2**k, (i + 1) * 2**k)``:

* slide RGB: the mean of that block, by repeated 2x2 means rounded to nearest (edge
  pixels repeated where a side is odd);
* mask labels: the level-0 label at the block's centre pixel ``(j * 2**k + 2**(k-1), ...)``
  (clamped to the slide), an exact sample of level 0 that favours no class and does not
  shift the mask against the image.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import tifffile


@dataclass(frozen=True)
class PyramidSpec:
    """Geometry and metadata of a slide pyramid; sizes in pixels, level 0 first."""

    width: int
    height: int
    tile: int = 256
    min_side: int = 1000
    mpp: float = 0.5
    objective_power: float = 20.0
    jpeg_quality: int = 90

    @property
    def levels(self) -> list[tuple[int, int]]:
        """``(w, h)`` of every level: halved (ceil) until the longer side is below ``min_side``."""
        sizes = [(self.width, self.height)]
        while max(sizes[-1]) >= self.min_side and max(sizes[-1]) > 1:
            k = len(sizes)
            sizes.append((math.ceil(self.width / 2**k), math.ceil(self.height / 2**k)))
        return sizes

    def aperio_description(self, extra: str = "") -> str:
        """The level-0 ImageDescription that makes OpenSlide read it as Aperio (mpp, power)."""
        w, h, t = self.width, self.height, self.tile
        return (
            f"Aperio Image Library razn-synth\n{w}x{h} [0,0 {w}x{h}] ({t}x{t}) "
            f"JPEG Q={self.jpeg_quality}|AppMag = {self.objective_power:g}|MPP = {self.mpp:g}"
            + extra
        )


def write_pyramids(
    slide_path: Path,
    mask_path: Path,
    spec: PyramidSpec,
    strips: Iterable[tuple[np.ndarray, np.ndarray]],
    description: str,
    mask_description: str,
) -> None:
    """Write slide and mask pyramids from level-0 strips ``(rgb [rows, W, 3], labels [rows, W])``.

    Strips come top to bottom, ``spec.tile`` rows each (the last may be shorter).
    """
    levels = spec.levels
    with tempfile.TemporaryDirectory(prefix=".razn-synth-", dir=slide_path.parent) as tmp:
        label_raws = [Path(tmp) / f"labels{k}.raw" for k in range(len(levels))]
        with ExitStack() as stack:
            sinks = [stack.enter_context(p.open("wb")) for p in label_raws]
            rgb_strips = _tee_labels(strips, sinks, spec)
            _write_slide(slide_path, spec, rgb_strips, description, Path(tmp))
        with tifffile.TiffWriter(mask_path, bigtiff=True) as tw:
            for k, (w, h) in enumerate(levels):
                tiles = _tiles(_raw_strips(label_raws[k], (h, w), spec.tile), spec.tile)
                tw.write(
                    tiles, shape=(h, w), dtype=np.uint8, **_mask_page(spec, k, mask_description)
                )


def _write_slide(
    path: Path, spec: PyramidSpec, strips: Iterator[np.ndarray], description: str, tmp: Path
) -> None:
    """Write every slide level; level ``k + 1`` is the 2x2 mean of level ``k``, via a raw file."""
    levels = spec.levels
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for k, (w, h) in enumerate(levels):
            next_raw = tmp / f"rgb{k + 1}.raw" if k + 1 < len(levels) else None
            with next_raw.open("wb") if next_raw else nullcontext() as sink:
                tiles = _tiles(strips, spec.tile, sink)
                tw.write(
                    tiles, shape=(h, w, 3), dtype=np.uint8, **_slide_page(spec, k, description)
                )
            if next_raw is not None:
                nw, nh = levels[k + 1]
                strips = _raw_strips(next_raw, (nh, nw, 3), spec.tile)


def _slide_page(spec: PyramidSpec, level: int, description: str) -> dict[str, Any]:
    return {
        "compression": "jpeg",
        "compressionargs": {"level": spec.jpeg_quality},
        "photometric": "rgb",
        **_common_page(spec, level, description),
    }


def _mask_page(spec: PyramidSpec, level: int, description: str) -> dict[str, Any]:
    return {
        "compression": "zlib",
        "photometric": "minisblack",
        **_common_page(spec, level, description),
    }


def _common_page(spec: PyramidSpec, level: int, description: str) -> dict[str, Any]:
    per_cm = 1e4 / (spec.mpp * 2**level)
    return {
        "tile": (spec.tile, spec.tile),
        "subfiletype": 0 if level == 0 else 1,  # 1 = reduced-resolution version of page 0
        "description": description if level == 0 else None,
        "resolution": (per_cm, per_cm),
        "resolutionunit": "CENTIMETER",
        "metadata": None,
    }


def _tiles(
    strips: Iterable[np.ndarray], tile: int, sink: BinaryIO | None = None
) -> Iterator[np.ndarray]:
    """Tiles of each strip in row-major order; 2x2-mean strips go to ``sink`` on the way."""
    for strip in strips:
        if sink is not None:
            sink.write(_mean2x2(strip).tobytes())
        for x in range(0, strip.shape[1], tile):
            yield strip[:, x : x + tile]


def _tee_labels(
    strips: Iterable[tuple[np.ndarray, np.ndarray]], sinks: Sequence[BinaryIO], spec: PyramidSpec
) -> Iterator[np.ndarray]:
    """Pass the RGB of each strip on; append each mask level's samples of its labels to ``sinks``."""
    samples = [
        (_centres(h, k, spec.height), _centres(w, k, spec.width))
        for k, (w, h) in enumerate(spec.levels)
    ]
    y = 0
    for rgb, labels in strips:
        rows = len(labels)
        for sink, (ys, xs) in zip(sinks, samples, strict=True):
            picked = ys[(ys >= y) & (ys < y + rows)] - y
            sink.write(np.ascontiguousarray(labels[picked][:, xs], dtype=np.uint8).tobytes())
        y += rows
        yield rgb


def _centres(n: int, level: int, extent: int) -> np.ndarray:
    """Level-0 index of the centre pixel of each of the ``n`` blocks of level ``level``."""
    offset = 2 ** (level - 1) if level else 0
    return np.minimum(np.arange(n) * 2**level + offset, extent - 1)


def _raw_strips(path: Path, shape: tuple[int, ...], rows: int) -> Iterator[np.ndarray]:
    """Read a raw uint8 array of ``shape`` back in strips of ``rows`` rows.

    Plain reads rather than a memmap: mapped pages would count against the resident set.
    """
    row_items = math.prod(shape[1:])
    with path.open("rb") as f:
        for y in range(0, shape[0], rows):
            n = min(rows, shape[0] - y)
            data = np.fromfile(f, dtype=np.uint8, count=n * row_items)
            yield data.reshape(n, *shape[1:])


def _mean2x2(strip: np.ndarray) -> np.ndarray:
    """2x2 area mean of an RGB strip ``[rows, w, 3]`` (odd edges repeated), rounded."""
    s = _pad_even(strip).astype(np.uint16)
    total = s[0::2, 0::2] + s[1::2, 0::2] + s[0::2, 1::2] + s[1::2, 1::2]
    return ((total + 2) // 4).astype(np.uint8)


def _pad_even(a: np.ndarray) -> np.ndarray:
    """Repeat the last row/column so both sides are even."""
    pad = [(0, a.shape[0] % 2), (0, a.shape[1] % 2), (0, 0)]
    return np.pad(a, pad, mode="edge") if pad[0][1] or pad[1][1] else a
