"""QuPath GeoJSON from a label image: one annotation per connected region of each class.

Outlines run along pixel edges: label pixel ``(i, j)`` of an image at downsample ``d``
is the square ``[j·d, (j+1)·d] × [i·d, (i+1)·d]`` in level-0 pixels, so a region's
polygon is exact, with integer vertices whenever ``d`` is. Regions are 4-connected
(pixels touching only at a corner are separate features) and holes are interior rings
of their region's polygon (never separate filled polygons); a region inside a hole is
a feature of its own. The tracer links the boundary edges of each class mask into
rings (turning toward the class at corner-only contacts), tells shells from holes by
orientation and gives each hole to its region through a 4-connected component
labelling. Every polygon is checked with shapely; the rare ring that touches itself at
a corner is repaired with ``make_valid``. Exterior rings run counter-clockwise in
``(x, y)`` numbers, holes clockwise (RFC 7946).

Memory is bounded by tracing a copy of at most ``max_side`` pixels per side (about
6 bytes per traced pixel at peak, some 400 MB at 8192²). :func:`ome_zarr_to_geojson`
traces the finest pyramid level of a razn OME-Zarr that fits (2×2-mode downsampled);
:func:`labels_to_geojson` given a larger array samples it by nearest neighbour (the
pixel at each block's centre). Either way the outline resolution is that of the traced
image, not the output resolution: a region smaller than one traced pixel can vanish.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import zarr
from scipy import ndimage

from razn.errors import RaznError
from razn.outputs.ome_zarr import Colour, class_colours
from razn.zarr_nodes import child_array

MAX_SIDE = 8192


def labels_to_geojson(
    labels: Any,
    output_downsample: float,
    class_names: Sequence[str],
    colours: Sequence[Colour] | None = None,
    *,
    min_area_px: float = 0.0,
    max_side: int = MAX_SIDE,
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the classes in ``labels``, in level-0 pixels.

    Args:
        labels: ``[y, x]`` integer labels (numpy or zarr) at ``output_downsample``
            (level-0 px per label pixel); 0 is background and gives no feature.
        class_names: one name per label value, background first; values past its end
            are ignored.
        colours: RGB per label value; razn's palette by default.
        min_area_px: regions (holes excluded) smaller than this area in level-0 px²
            are dropped.
        max_side: larger images are traced at an integer subsampling that fits.
    """
    height, width = labels.shape
    extent = (width * output_downsample, height * output_downsample)
    factor = max(1, math.ceil(max(height, width) / max_side))
    traced = _subsample(labels, factor)
    rgb = class_colours(len(class_names), colours)
    return _collection(traced, output_downsample * factor, extent, class_names, rgb, min_area_px)


def ome_zarr_to_geojson(
    path: str | Path, *, min_area_px: float = 0.0, max_side: int = MAX_SIDE
) -> dict[str, Any]:
    """The GeoJSON of a label image written by :func:`razn.outputs.ome_zarr.write_label_image`,
    traced at its finest pyramid level with at most ``max_side`` pixels per side.

    Class names and colours come from its ``image-label`` metadata.
    """
    group = zarr.open_group(str(path), mode="r")
    attrs: dict[str, Any] = dict(group.attrs)  # JSON metadata, checked below
    ome, razn = attrs.get("ome", attrs), attrs.get("razn", {})
    if "multiscales" not in ome or "output_downsample" not in razn:
        raise RaznError("not a razn OME-Zarr label image (no multiscales or razn metadata)", path)
    datasets = ome["multiscales"][0]["datasets"]
    arrays = [child_array(group, d["path"], path) for d in datasets]
    pick = next((k for k, a in enumerate(arrays) if max(a.shape) <= max_side), len(arrays) - 1)
    scale0 = datasets[0]["coordinateTransformations"][0]["scale"][-1]
    scale = datasets[pick]["coordinateTransformations"][0]["scale"][-1]
    d_out = float(razn["output_downsample"])
    names, rgb = _label_table(ome.get("image-label", {}))
    height, width = arrays[0].shape
    extent = (width * d_out, height * d_out)
    factor = max(1, math.ceil(max(arrays[pick].shape) / max_side))
    traced = _subsample(arrays[pick], factor)
    return _collection(traced, d_out * scale / scale0 * factor, extent, names, rgb, min_area_px)


def write_geojson(path: str | Path, collection: dict[str, Any]) -> Path:
    """Write a FeatureCollection as compact UTF-8 JSON (QuPath: File > Import objects)."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as handle:
        json.dump(collection, handle, separators=(",", ":"))
    return path


def mask_polygons(mask: np.ndarray) -> list[shapely.Polygon]:
    """Valid polygons, one per 4-connected region of ``mask`` (holes as interior rings),
    in pixel units: pixel ``(i, j)`` is the unit square at ``x = j``, ``y = i``.
    """
    rings = _trace(np.asarray(mask, bool))
    polygons = _polygons(rings.coords.astype(np.float64), rings)
    return [part for polygon in polygons for part in _repaired(polygon)]


@dataclass
class _Rings:
    """The boundary rings of a mask, grouped by region: each region's shell, then its holes."""

    coords: np.ndarray  # (n, 2) pixel corners (x, y), rings concatenated and closed
    ring_bounds: np.ndarray  # (r + 1,) offsets of the rings into coords
    polygon_bounds: np.ndarray  # (regions + 1,) offsets of each region's rings
    region_area: np.ndarray  # (regions,) pixels, holes excluded


def _collection(
    traced: np.ndarray,
    downsample: float,
    extent: tuple[float, float],
    class_names: Sequence[str],
    rgb: Sequence[tuple[int, int, int]],
    min_area_px: float,
) -> dict[str, Any]:
    features: list[dict[str, Any]] = []
    limit = np.asarray(extent, np.float64)
    for value in range(1, len(class_names)):
        mask = traced == value
        if not mask.any():
            continue
        rings = _trace(mask)
        del mask
        keep = rings.region_area * downsample**2 >= min_area_px
        classification = {"name": class_names[value], "color": list(rgb[value])}
        for polygon_rings in _region_rings(rings, downsample, limit, keep):
            features.append(_feature(polygon_rings, classification))
    return {"type": "FeatureCollection", "features": features}


def _region_rings(
    rings: _Rings, downsample: float, limit: np.ndarray, keep: np.ndarray
) -> Iterator[list[list[list[float]]]]:
    """GeoJSON polygon coordinates of each kept region, in level-0 pixels."""
    rings = _select(rings, np.flatnonzero(keep))
    coords = np.minimum(rings.coords * np.float64(downsample), limit)
    polygons = _polygons(coords, rings)
    valid = shapely.is_valid(polygons)
    points = _json_numbers(coords)
    ring_bounds, polygon_bounds = rings.ring_bounds.tolist(), rings.polygon_bounds.tolist()
    for region, polygon in enumerate(polygons):
        if valid[region]:
            span = range(polygon_bounds[region], polygon_bounds[region + 1])
            yield [points[ring_bounds[k] : ring_bounds[k + 1]] for k in span]
            continue
        for part in _repaired(polygon):
            parts = (part.exterior, *part.interiors)
            yield [_json_numbers(shapely.get_coordinates(r)) for r in parts]


def _select(rings: _Rings, regions: np.ndarray) -> _Rings:
    """The rings of ``regions`` only."""
    polygon_bounds, ring_index = _ragged_take(rings.polygon_bounds, regions)
    ring_bounds, coord_index = _ragged_take(rings.ring_bounds, ring_index)
    return _Rings(
        rings.coords[coord_index], ring_bounds, polygon_bounds, rings.region_area[regions]
    )


def _ragged_take(bounds: np.ndarray, take: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and element indices of the items ``take`` of a ragged array with ``bounds``."""
    lengths = np.diff(bounds)[take]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    shift = np.repeat(offsets[:-1] - bounds[:-1][take], lengths)
    return offsets, np.arange(offsets[-1], dtype=np.int64) - shift


def _feature(coordinates: list[Any], classification: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": coordinates},
        "properties": {"objectType": "annotation", "classification": classification},
    }


def _json_numbers(coords: np.ndarray) -> list[Any]:
    """Coordinates as JSON-ready lists: integers where they are whole, else 3 decimals."""
    if np.all(coords == np.round(coords)):
        return coords.astype(np.int64).tolist()
    return np.round(coords, 3).tolist()


def _subsample(labels: Any, factor: int) -> np.ndarray:
    """``labels`` at every ``factor``-th pixel (the centre of each block, clipped), in RAM."""
    if factor == 1:
        return np.asarray(labels[...])
    rows = np.minimum(np.arange(math.ceil(labels.shape[0] / factor)) * factor + factor // 2,
                      labels.shape[0] - 1)  # fmt: skip
    cols = np.minimum(np.arange(math.ceil(labels.shape[1] / factor)) * factor + factor // 2,
                      labels.shape[1] - 1)  # fmt: skip
    if hasattr(labels, "oindex"):  # zarr: each chunk read once
        return np.asarray(labels.oindex[rows, cols])
    return np.asarray(labels)[np.ix_(rows, cols)]


def _label_table(image_label: dict[str, Any]) -> tuple[list[str], list[tuple[int, int, int]]]:
    """Class names and RGB colours by label value, from NGFF ``image-label`` metadata."""
    names = {
        int(p["label-value"]): str(p.get("name", "")) for p in image_label.get("properties", [])
    }
    colours = {int(c["label-value"]): c["rgba"][:3] for c in image_label.get("colors", [])}
    count = max([*names, *colours, 0]) + 1
    fallback = class_colours(count)
    return (
        [names.get(v) or f"class {v}" for v in range(count)],
        class_colours(count, [colours.get(v, fallback[v]) for v in range(count)]),
    )


def _trace(mask: np.ndarray) -> _Rings:
    """Every boundary ring of ``mask``, with the 4-connected region each one bounds."""
    starts, ends, direction = _boundary_segments(mask)
    order, bounds = _cycles(_successors(starts, ends, direction, mask.shape[1] + 1))
    lengths = np.diff(bounds)
    ring_id = np.repeat(np.arange(len(lengths)), lengths)
    cross = starts[:, 0] * ends[:, 1] - ends[:, 0] * starts[:, 1]  # shoelace terms
    area = 0.5 * np.bincount(ring_id, weights=cross[order], minlength=len(lengths))
    first = order[bounds[:-1]]
    seed_y, seed_x = _seed_pixels(starts[first], direction[first])
    components, count = ndimage.label(mask)  # 4-connected
    owner = components[seed_y, seed_x] - 1
    del components
    perm = np.lexsort((area < 0, owner))  # by region, its shell (area > 0) first
    ring_bounds, gather = _closed_rings(bounds, perm)
    return _Rings(
        coords=starts[order[gather]],
        ring_bounds=ring_bounds,
        polygon_bounds=np.searchsorted(owner[perm], np.arange(count + 1)),
        region_area=np.bincount(owner, weights=area, minlength=count),
    )


def _closed_rings(bounds: np.ndarray, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and source indices of the rings ``bounds`` reordered by ``perm``, each closed
    by repeating its first vertex."""
    lengths = np.diff(bounds)[perm]
    ring_bounds = np.concatenate([[0], np.cumsum(lengths + 1)])
    local = np.arange(ring_bounds[-1]) - np.repeat(ring_bounds[:-1], lengths + 1)
    local[ring_bounds[1:] - 1] = 0  # the closing vertex is the first one
    return ring_bounds, np.repeat(bounds[:-1][perm], lengths + 1) + local


def _polygons(coords: np.ndarray, rings: _Rings) -> np.ndarray:
    """One shapely polygon per region, from ``coords`` laid out as ``rings`` says."""
    offsets = (rings.ring_bounds, rings.polygon_bounds)
    return shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords, offsets)


def _repaired(polygon: shapely.Polygon) -> list[shapely.Polygon]:
    """``polygon`` if valid (a ring touching itself at a corner is not), else its repair."""
    if shapely.is_valid(polygon):
        return [polygon]
    repaired = shapely.make_valid(polygon, method="structure", keep_collapsed=False)
    parts = shapely.get_parts(shapely.orient_polygons(repaired))
    return [p for p in parts if isinstance(p, shapely.Polygon) and not p.is_empty]


def _transitions(edges: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(line, start, stop)`` of every run of True in ``edges`` along rows (``axis=1``)
    or columns (``axis=0``), ``line`` being the row or column."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (1, 1)
    padded = np.pad(edges, pad)
    lead = padded[:, 1:] if axis == 1 else padded[1:]
    trail = padded[:, :-1] if axis == 1 else padded[:-1]
    flat = np.flatnonzero(lead != trail)
    row, col = np.divmod(flat, lead.shape[1])
    if axis == 0:
        by_column = np.lexsort((row, col))
        row, col = col[by_column], row[by_column]  # now (column, row)
    return row[0::2], col[0::2], col[1::2]  # starts and stops alternate on each line


def _boundary_segments(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal straight boundary segments with the mask on their right (y down).

    Returns start and end vertices ``(n, 2)`` as ``(x, y)`` pixel corners and the
    direction (0: +x, 1: +y, 2: −x, 3: −y).
    """
    padded = np.pad(mask, 1)
    core = padded[1:-1, 1:-1]
    parts = []
    row, a, b = _transitions(core & ~padded[:-2, 1:-1], 1)  # top edges, walked +x
    parts.append((np.stack([a, row], 1), np.stack([b, row], 1), 0))
    row, a, b = _transitions(core & ~padded[2:, 1:-1], 1)  # bottom edges, walked −x
    parts.append((np.stack([b, row + 1], 1), np.stack([a, row + 1], 1), 2))
    col, a, b = _transitions(core & ~padded[1:-1, :-2], 0)  # left edges, walked −y
    parts.append((np.stack([col, b], 1), np.stack([col, a], 1), 3))
    col, a, b = _transitions(core & ~padded[1:-1, 2:], 0)  # right edges, walked +y
    parts.append((np.stack([col + 1, a], 1), np.stack([col + 1, b], 1), 1))
    starts = np.concatenate([p[0] for p in parts]).astype(np.int64)
    ends = np.concatenate([p[1] for p in parts]).astype(np.int64)
    direction = np.concatenate([np.full(len(p[0]), p[2], np.int8) for p in parts])
    return starts, ends, direction


def _successors(
    starts: np.ndarray, ends: np.ndarray, direction: np.ndarray, stride: int
) -> np.ndarray:
    """The segment that follows each one; at a corner shared by two diagonal pixels the
    right turn (toward the mask) is taken, which keeps those pixels apart (4-connectivity).
    """
    start_key = starts[:, 1] * stride + starts[:, 0]
    end_key = ends[:, 1] * stride + ends[:, 0]
    order = np.argsort(start_key, kind="stable")
    keys = start_key[order]
    pos = np.searchsorted(keys, end_key)
    first = order[pos]
    after = np.minimum(pos + 1, len(keys) - 1)
    second = order[after]
    two = (pos + 1 < len(keys)) & (keys[after] == end_key)
    right_turn = (direction + 1) % 4
    return np.where(two & (direction[first] != right_turn), second, first)


def _cycles(successors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cycles of the successor permutation: segment indices ring after ring, and the
    ring offsets into them."""
    following = array("q", successors.astype(np.int64).tobytes())  # 8 bytes a segment
    seen = bytearray(len(following))
    order = array("q")
    bounds = [0]
    for start in range(len(following)):
        edge = start
        while not seen[edge]:
            seen[edge] = 1
            order.append(edge)
            edge = following[edge]
        if len(order) > bounds[-1]:
            bounds.append(len(order))
    return np.frombuffer(order, np.int64), np.asarray(bounds, np.int64)


def _seed_pixels(starts: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(row, col)`` of the mask pixel on the right of each segment's first unit edge."""
    dx = np.array([0, -1, -1, 0])[direction]
    dy = np.array([0, 0, -1, -1])[direction]
    return starts[:, 1] + dy, starts[:, 0] + dx
