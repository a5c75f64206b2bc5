"""One synthetic slide on disk: render level 0 strip by strip and write slide and mask pyramids."""

from __future__ import annotations

from collections.abc import Iterator
from os import PathLike
from pathlib import Path

import numpy as np
from tqdm import tqdm

from razn.data.synth.config import SynthConfig
from razn.data.synth.content import render_layers
from razn.data.synth.layout import SlideLayout, slide_layout
from razn.data.synth.pyramid_tiff import PyramidSpec, write_pyramids
from razn.errors import RaznError

_CHUNK = 2048  # level-0 columns rendered at once: keeps float32 temporaries to a few MB


def mask_description(config: SynthConfig) -> str:
    """The mask TIFF's ImageDescription: what its values mean and how levels are sampled."""
    values = ", ".join(f"{value} = {name}" for value, name in enumerate(config.class_names))
    return (
        f"razn-synth {config.classes} mask: uint8 labels, {values}; level k pixel [i, j] "
        "is the level-0 label at the centre of its 2**k block"
    )


def write_synthetic_slide(
    slide_path: str | PathLike[str],
    mask_path: str | PathLike[str],
    width: int,
    height: int,
    seed: int,
    config: SynthConfig,
    *,
    progress: bool = False,
) -> None:
    """Write a ``width x height`` (level-0 px) synthetic slide and its ground-truth mask.

    The slide is a pyramidal tiled BigTIFF with JPEG tiles that OpenSlide reads as Aperio
    (mpp and objective power in the metadata); the mask is a single-channel uint8 tiled
    TIFF (deflate) with the same pyramid geometry. Memory stays bounded whatever the size;
    temporary files go next to ``slide_path``. Same arguments, same files.
    """
    if width < 1 or height < 1:
        raise RaznError(f"slide size must be positive, got {width}x{height}")
    slide_path, mask_path = Path(slide_path), Path(mask_path)
    spec = pyramid_spec(width, height, config)
    strips = level0_strips(slide_layout(width, height, seed, config), config.tile_size)
    if progress:
        total = -(-height // config.tile_size)
        strips = tqdm(strips, total=total, desc=slide_path.name, unit="row", leave=False)
    description = spec.aperio_description(f"|Seed = {seed}")
    try:
        for folder in {slide_path.parent, mask_path.parent}:
            folder.mkdir(parents=True, exist_ok=True)
        write_pyramids(slide_path, mask_path, spec, strips, description, mask_description(config))
    except OSError as exc:  # disk full, no permission: a user's problem, not a bug
        raise RaznError(
            f"cannot write the synthetic slide: {exc.strerror or exc}", slide_path
        ) from None


def pyramid_spec(width: int, height: int, config: SynthConfig) -> PyramidSpec:
    """The pyramid geometry and metadata of a ``width x height`` slide made with ``config``."""
    return PyramidSpec(
        width=width,
        height=height,
        tile=config.tile_size,
        min_side=config.pyramid_min_side,
        mpp=config.mpp,
        objective_power=config.objective_power,
        jpeg_quality=config.jpeg_quality,
    )


def level0_strips(layout: SlideLayout, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Level-0 strips of ``rows`` rows, top to bottom: ``(rgb [rows, W, 3], labels [rows, W])``."""
    width, height = layout.width, layout.height
    for y in range(0, height, rows):
        n = min(rows, height - y)
        rgb = np.empty((n, width, 3), dtype=np.uint8)
        labels = np.empty((n, width), dtype=np.uint8)
        for x in range(0, width, _CHUNK):
            w = min(_CHUNK, width - x)
            rgb[:, x : x + w], layers = render_layers(layout, x, y, w, n)
            labels[:, x : x + w] = layers.mask
        yield rgb, labels
