"""One OME-Zarr per slide, laid out as NGFF defines it: an image with its labels.

``slide.ome.zarr/`` is an NGFF **image group**: a downsampled RGB pyramid of the slide
(axes ``c``, ``y``, ``x``; ``omero`` rendering as red, green, blue), so a viewer has the
tissue under the labels. Its ``labels/`` group lists two label images,
``labels/classes`` (the class map) and ``labels/zoom_levels`` (the working level that
decided each pixel), written by :mod:`razn.outputs.ome_zarr` with
``image-label.source`` pointing back at the image (``../../``). napari
(napari-ome-zarr) opens the folder in one go as three named layers: the slide, then
the two label layers with their colours; QuPath and other NGFF image readers open the
RGB pyramid; ``ome_zarr.reader`` finds the image and its labels.

The image's level 0 is at a downsample of ``output_downsample × 2**k`` (the smallest
``k`` that brings the longest side to at most ``IMAGE_SIDE``), so its scales and the
labels' are multiples of each other in the same physical space (µm when the slide has
an mpp, else level-0 pixels); every coarser level halves it by the mean of 2×2 blocks.
It is written window by window from a reader, so memory does not grow with the slide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from numcodecs import Blosc

from razn.errors import RaznError
from razn.outputs.ome_zarr import THUMBNAIL_SIDE, NgffVersion, pyramid_shapes

IMAGE_SIDE = 4096
"""Longest side of the RGB pyramid's finest level (pixels)."""
CHUNK = 512
WINDOW = 2048
"""Rows and columns read from the slide per window."""
LABEL_NAMES = ("classes", "zoom_levels")
"""The label images under ``labels/``, in the order viewers list them."""

RgbReader = Callable[[tuple[int, int], float, tuple[int, int]], np.ndarray]
"""``read(level-0 (x, y), downsample, (w, h))`` → ``(h, w, 3)`` uint8 RGB."""


def image_downsample(dimensions: tuple[int, int], output_downsample: float) -> float:
    """The downsample of the RGB pyramid's finest level (see the module docstring)."""
    longest = max(dimensions) / output_downsample
    steps = max(0, math.ceil(math.log2(max(longest, 1) / IMAGE_SIDE)))
    return float(output_downsample * 2**steps)


def write_slide_image(
    path: str | Path,
    read: RgbReader,
    dimensions: tuple[int, int],
    output_downsample: float,
    mpp: Sequence[float] | None,
    name: str,
    version: NgffVersion = "0.4",
) -> Path:
    """Create the image group at ``path`` (replaced if it exists): the RGB pyramid read
    through ``read``, and an empty ``labels/`` group listing :data:`LABEL_NAMES` (the
    label images are written into it afterwards).

    Args:
        dimensions: the slide's level-0 ``(w, h)``.
        output_downsample: the labels' level-0 pixels per pixel.
        mpp: ``(x, y)`` µm per level-0 pixel, or None.
        name: the image's name (viewers show it as the layer name).
    """
    if version not in ("0.4", "0.5"):
        raise RaznError(f"NGFF version must be '0.4' or '0.5', got {version!r}", path)
    path = Path(path)
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    downsample = image_downsample(dimensions, output_downsample)
    width = math.ceil(dimensions[0] / downsample)
    height = math.ceil(dimensions[1] / downsample)
    shapes = pyramid_shapes((height, width), THUMBNAIL_SIDE)
    levels = [_create_level(group, str(k), shape, version) for k, shape in enumerate(shapes)]
    for y0 in range(0, height, WINDOW):
        for x0 in range(0, width, WINDOW):
            h, w = min(WINDOW, height - y0), min(WINDOW, width - x0)
            location = (round(x0 * downsample), round(y0 * downsample))
            rgb = np.asarray(read(location, downsample, (w, h)), np.uint8)
            levels[0][:, y0 : y0 + h, x0 : x0 + w] = np.moveaxis(rgb[:h, :w, :3], -1, 0)
    for k in range(1, len(levels)):
        _halve_into(levels[k - 1], levels[k])
    ome: dict[str, Any] = {
        "multiscales": [_multiscale(name, len(shapes), downsample, mpp, version)],
        "omero": _omero(name, version),
    }
    group.attrs.update({"ome": {"version": "0.5", **ome}} if version == "0.5" else ome)
    labels = group.create_group("labels")
    listing = {"labels": list(LABEL_NAMES)}
    labels.attrs.update({"ome": {"version": "0.5", **listing}} if version == "0.5" else listing)
    return path


def _create_level(group: Any, name: str, shape: tuple[int, int], version: NgffVersion) -> Any:
    common = {
        "shape": (3, *shape),
        "chunks": (3, min(CHUNK, shape[0]), min(CHUNK, shape[1])),
        "dtype": "uint8",
        "fill_value": 255,
    }
    if version == "0.5":
        return group.create_array(name, **common, dimension_names=("c", "y", "x"))
    return group.create_array(
        name, **common, compressors=Blosc(cname="zstd", clevel=5, shuffle=Blosc.NOSHUFFLE),
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )  # fmt: skip


def _halve_into(source: Any, target: Any) -> None:
    """``target`` = the mean of every 2×2 block of ``source`` (rounded half to even), one
    window at a time."""
    _, height, width = target.shape
    for y0 in range(0, height, WINDOW):
        for x0 in range(0, width, WINDOW):
            y1, x1 = min(y0 + WINDOW, height), min(x0 + WINDOW, width)
            block = np.asarray(source[:, 2 * y0 : 2 * y1, 2 * x0 : 2 * x1])
            target[:, y0:y1, x0:x1] = mean_2x2(block)


def mean_2x2(block: np.ndarray) -> np.ndarray:
    """The mean of every 2×2 block of ``(c, h, w)`` uint8 ``block``, rounded half to even
    as ``np.round`` does; an odd last row or column repeats its edge.

    Integer sums (uint16) instead of float means: the same values at a quarter of the
    memory traffic."""
    pad_y, pad_x = block.shape[1] % 2, block.shape[2] % 2
    if pad_y or pad_x:
        block = np.pad(block, ((0, 0), (0, pad_y), (0, pad_x)), mode="edge")
    total = block[:, 0::2, 0::2].astype(np.uint16)
    total += block[:, 1::2, 0::2]
    total += block[:, 0::2, 1::2]
    total += block[:, 1::2, 1::2]
    # total = 4q + r: q for r < 2, q + 1 for r > 2, and for r = 2 (a mean of q + ½) the
    # even one of q and q + 1: adding 1 + (q & 1) before dividing by 4 does all three.
    total += 1 + ((total >> 2) & 1)
    return (total >> 2).astype(np.uint8)


def _multiscale(
    name: str, levels: int, downsample: float, mpp: Sequence[float] | None, version: NgffVersion
) -> dict[str, Any]:
    unit = {} if mpp is None else {"unit": "micrometer"}
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": axis, "type": "space", **unit} for axis in ("y", "x")
    ]
    per_px = (1.0, 1.0) if mpp is None else (float(mpp[1]), float(mpp[0]))  # (y, x)
    datasets = [
        {"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, *(s * downsample * 2**k for s in per_px)]}]}
        for k in range(levels)
    ]  # fmt: skip
    multiscale: dict[str, Any] = {"name": name, "axes": axes, "datasets": datasets, "type": "mean"}
    if version == "0.4":
        multiscale["version"] = "0.4"
    return multiscale


def _omero(name: str, version: NgffVersion) -> dict[str, Any]:
    window = {"start": 0, "end": 255, "min": 0, "max": 255}
    channels = [
        {"label": label, "color": colour, "window": window, "active": True}
        for label, colour in (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"))
    ]
    omero: dict[str, Any] = {"name": name, "channels": channels, "rdefs": {"model": "color"}}
    if version == "0.4":
        omero["version"] = "0.4"
    return omero
