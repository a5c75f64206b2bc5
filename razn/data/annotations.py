"""Polygon annotations (QuPath GeoJSON, ASAP / CAMELYON16 XML) and their label masks.

Coordinates are ``(x, y)`` in level-0 slide pixels. Rasterising follows the masks
convention: mask pixel ``[i, j]`` at downsample ``d`` covers level-0
``[j·d, (j+1)·d) × [i·d, (i+1)·d)`` and takes a polygon's label when its centre
``((j+0.5)·d, (i+0.5)·d)`` is inside the polygon (see :mod:`razn.data.masks.polygons`).

Drawing order: larger polygons first (by the area of their exterior ring), so a polygon
drawn inside another wins over it, whatever the labels — a lesion inside a "Normal"
region, an in situ duct inside a benign one, a CAMELYON16 exclusion (group ``_2``,
label 0) inside the tumour around it. Equal areas keep file order. A hole is simply not
painted by its polygon: it shows whatever lies beneath (background, unless another
polygon covers it — such as one drawn inside the hole).
"""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from razn.data.masks.polygons import PolygonPainter, Shape, make_shape
from razn.data.masks.writer import write_label_tiff
from razn.errors import AnnotationError

UNCLASSIFIED = "Unclassified"
"""Class name of an annotation that carries none (QuPath's name for it)."""

DEFAULT_LABEL_MAP: Mapping[str, int] = {
    "Tumor": 1,
    "tumor": 1,
    "Tumour": 1,
    "_0": 1,
    "_1": 1,
    "_2": 0,  # CAMELYON16: normal tissue inside a tumour region
}
"""Class name → label value used when none is given (QuPath and CAMELYON16 names)."""

_AREA_TYPES = {"Polygon", "MultiPolygon", "GeometryCollection"}
_OTHER_GEOMETRIES = {"Point", "MultiPoint", "LineString", "MultiLineString"}
_ASAP_NON_AREA = {"Dot", "PointSet", "Measurement"}
_TILE = 1024  # rasterize() works in tiles of this many pixels a side to bound memory


@dataclass(frozen=True, eq=False)
class Annotation:
    """One polygon: its class name, exterior ring and interior rings (holes).

    Attributes:
        class_name: e.g. ``"Tumor"``, or :data:`UNCLASSIFIED`.
        exterior: ``float64 [n, 2]`` ``(x, y)`` level-0 px, not repeating the first point.
        holes: interior rings, same layout.
        source: the file it was read from, for error messages.
    """

    class_name: str
    exterior: np.ndarray
    holes: tuple[np.ndarray, ...] = ()
    source: Path | None = field(default=None, repr=False)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` of the exterior, level-0 px."""
        (x0, y0), (x1, y1) = self.exterior.min(axis=0), self.exterior.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


def read_annotations(path: str | PathLike[str]) -> list[Annotation]:
    """Parse a QuPath GeoJSON or ASAP XML file (told apart by content) into polygons."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError("annotation file not found; check the path", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise AnnotationError(f"cannot read as text ({reason})", path) from None
    head = text.lstrip()[:1]
    if head == "<":
        return parse_asap(text, path)
    if head in ("{", "["):
        return parse_geojson(text, path)
    raise AnnotationError(
        "not an annotation file: expected QuPath GeoJSON ('{' or '[') or ASAP XML ('<'), "
        f"found {text.lstrip()[:20]!r}",
        path,
    )


# --- GeoJSON -------------------------------------------------------------------------


def parse_geojson(text: str, path: Path | None = None) -> list[Annotation]:
    """QuPath GeoJSON: a FeatureCollection, a list of features or one Feature."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"invalid JSON: {exc}", path) from None
    annotations: list[Annotation] = []
    skipped: set[str] = set()
    for where, feature in _features(data, path):
        name = _class_name(feature.get("properties"))
        for geometry_type, rings in _polygons(feature.get("geometry"), where, path, skipped):
            exterior, *holes = (_ring(r, f"{where} ({geometry_type})", path) for r in rings)
            annotations.append(Annotation(name, exterior, tuple(holes), path))
    if skipped:
        warnings.warn(f"{path}: skipped non-area geometries: {sorted(skipped)}", stacklevel=2)
    return annotations


def _features(data: Any, path: Path | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, feature)`` pairs; ``where`` names the feature in error messages."""
    is_dict = isinstance(data, dict)
    kind = data.get("type") if is_dict else None
    if isinstance(data, list):
        features: Any = data
    elif kind == "FeatureCollection" or (is_dict and kind is None and "features" in data):
        features = data.get("features")
    elif kind == "Feature" or (is_dict and "geometry" in data):
        features = [data]
    elif kind in _AREA_TYPES | _OTHER_GEOMETRIES:
        features = [{"geometry": data}]
    else:
        found = f"type {kind!r}" if isinstance(data, dict) else type(data).__name__
        raise AnnotationError(
            f"not GeoJSON: expected a FeatureCollection, a Feature or a list of features, "
            f"found {found}",
            path,
        )
    if not isinstance(features, list):
        raise AnnotationError("FeatureCollection has no 'features' list", path)
    for i, feature in enumerate(features):
        if not isinstance(feature, dict) or "geometry" not in feature:
            raise AnnotationError(f"features[{i}] is not a Feature with a 'geometry'", path)
        yield f"features[{i}]", feature


def _class_name(properties: Any) -> str:
    """``classification.name``, else ``classification`` as a string, else ``name``."""
    if not isinstance(properties, dict):
        return UNCLASSIFIED
    classification = properties.get("classification")
    if isinstance(classification, dict) and isinstance(classification.get("name"), str):
        return str(classification["name"])
    if isinstance(classification, str):
        return classification
    name = properties.get("name")
    return name if isinstance(name, str) and name else UNCLASSIFIED


def _polygons(
    geometry: Any, where: str, path: Path | None, skipped: set[str]
) -> Iterator[tuple[str, list[Any]]]:
    """``(type, rings)`` of each polygon in a geometry; points and lines are skipped."""
    if geometry is None:  # GeoJSON allows features without geometry
        return
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if kind == "Polygon" and isinstance(coords, list):
        yield kind, _rings(coords, where, path)
    elif kind == "MultiPolygon" and isinstance(coords, list):
        for k, polygon in enumerate(coords):
            yield f"MultiPolygon part {k}", _rings(polygon, where, path)
    elif kind == "GeometryCollection":
        for part in geometry.get("geometries") or []:
            yield from _polygons(part, where, path, skipped)
    elif kind in _OTHER_GEOMETRIES:
        skipped.add(kind)
    else:
        raise AnnotationError(
            f"{where}: geometry type {kind!r} with coordinates of type "
            f"{type(coords).__name__}; expected a Polygon or MultiPolygon",
            path,
        )


def _rings(coords: Any, where: str, path: Path | None) -> list[Any]:
    """The rings of one polygon's coordinates: a non-empty list, exterior first."""
    if not isinstance(coords, list) or not coords:
        raise AnnotationError(f"{where}: polygon has no rings; expected [[x, y], …] rings", path)
    return coords


def _ring(points: Any, where: str, path: Path | None) -> np.ndarray:
    """A ring as ``float64 [n, 2]``, without the closing point; at least 3 points."""
    try:
        ring = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: ring coordinates are not [x, y] numbers", path) from None
    if ring.ndim != 2 or ring.shape[1] < 2 or not np.isfinite(ring[:, :2]).all():
        raise AnnotationError(
            f"{where}: expected a ring of finite [x, y] points, found shape {ring.shape}", path
        )
    ring = ring[:, :2]
    if len(ring) > 1 and (ring[0] == ring[-1]).all():
        ring = ring[:-1]
    if len(np.unique(ring, axis=0)) < 3:
        raise AnnotationError(
            f"{where}: polygon ring has {len(ring)} distinct point(s); a polygon needs at least 3",
            path,
        )
    return ring


# --- ASAP / CAMELYON16 XML -----------------------------------------------------------


def parse_asap(text: str, path: Path | None = None) -> list[Annotation]:
    """ASAP XML: ``ASAP_Annotations/Annotations/Annotation`` with ``PartOfGroup`` and
    ``Coordinates/Coordinate`` (``Order``, ``X``, ``Y``). Splines keep their control
    points as the polygon; dots and point sets are skipped.
    """
    try:
        root = ET.fromstring(text)  # expat: no external entities, bounded expansion
    except ET.ParseError as exc:
        raise AnnotationError(f"invalid XML: {exc}", path) from None
    if root.tag != "ASAP_Annotations":
        raise AnnotationError(f"XML root is <{root.tag}>; expected <ASAP_Annotations>", path)
    elements = root.findall("./Annotations/Annotation")
    if not elements:
        raise AnnotationError("no Annotations/Annotation elements; nothing to read", path)
    annotations = []
    for i, element in enumerate(elements):
        if element.get("Type") in _ASAP_NON_AREA:
            continue
        where = f"Annotation {element.get('Name', i)!r}"
        group = element.get("PartOfGroup") or "None"
        name = UNCLASSIFIED if group == "None" else group
        annotations.append(Annotation(name, _asap_ring(element, where, path), (), path))
    return annotations


def _asap_ring(element: ET.Element, where: str, path: Path | None) -> np.ndarray:
    coordinates = element.findall("./Coordinates/Coordinate")
    if not coordinates:
        raise AnnotationError(f"{where} has no Coordinates/Coordinate elements", path)
    points: list[tuple[int, float, float]] = []
    for c in coordinates:
        try:
            order = int(float(c.get("Order", len(points))))
            points.append((order, _number(c.get("X")), _number(c.get("Y"))))
        except (TypeError, ValueError, OverflowError):
            raise AnnotationError(
                f"{where}: coordinate {c.attrib} needs numeric Order, X and Y", path
            ) from None
    points.sort(key=lambda p: p[0])
    return _ring([p[1:] for p in points], where, path)


def _number(text: str | None) -> float:
    """A float from an attribute; a decimal comma (some CAMELYON exports) is accepted."""
    if text is None:
        raise ValueError("missing")
    try:
        return float(text)
    except ValueError:
        return float(text.replace(",", "."))


# --- rasterisation -------------------------------------------------------------------


def rasterize(
    annotations: Sequence[Annotation],
    size: tuple[int, int],
    downsample: float = 1.0,
    label_map: Mapping[str, int] | None = None,
    *,
    skip_unknown: bool = False,
) -> np.ndarray:
    """In-memory label mask ``uint8 [h, w]`` of ``size = (w, h)`` px at ``downsample``.

    For small masks and tests; use :func:`rasterize_to_tiff` for whole slides.
    """
    w, h = size
    if not downsample > 0:
        raise AnnotationError(f"downsample must be a positive number, got {downsample!r}")
    painter = PolygonPainter(_shapes(annotations, label_map, skip_unknown))
    out = np.zeros((h, w), np.uint8)
    for y in range(0, h, _TILE):
        for x in range(0, w, _TILE):
            box = (min(_TILE, w - x), min(_TILE, h - y))
            location = (x * downsample, y * downsample)
            out[y : y + box[1], x : x + box[0]] = painter.render(location, downsample, box)
    return out


def rasterize_to_tiff(
    annotations: Sequence[Annotation],
    slide_dimensions: tuple[int, int],
    out_path: str | PathLike[str],
    downsample: float = 1.0,
    label_map: Mapping[str, int] | None = None,
    *,
    skip_unknown: bool = False,
    tile: int = 512,
    progress: bool = False,
) -> Path:
    """Write the label mask of a ``(W, H)`` slide as a tiled, zlib, pyramidal uint8 TIFF.

    Level 0 is at ``downsample`` with size ``ceil(W / d) × ceil(H / d)``; levels halve
    down to one tile. Drawn tile by tile: memory does not grow with the slide.
    Readable by :func:`razn.data.masks.open_mask`.
    """
    painter = PolygonPainter(_shapes(annotations, label_map, skip_unknown))
    return write_label_tiff(
        out_path,
        slide_dimensions,
        painter.render,
        downsample=downsample,
        tile=tile,
        progress=progress,
    )


def _shapes(
    annotations: Sequence[Annotation], label_map: Mapping[str, int] | None, skip_unknown: bool
) -> list[Shape]:
    """Shapes in drawing order: larger exteriors first, so nested polygons win (stable)."""
    labels = dict(DEFAULT_LABEL_MAP if label_map is None else label_map)
    _check_label_map(labels)
    unknown = [a for a in annotations if a.class_name not in labels]
    if unknown and not skip_unknown:
        names = sorted({a.class_name for a in unknown})
        raise AnnotationError(
            f"class name(s) {names} have no label; known: {sorted(labels)} — add them to "
            "the label map (--label NAME=VALUE) or skip unknown classes",
            unknown[0].source,
        )
    known = [a for a in annotations if a.class_name in labels]
    known.sort(key=lambda a: -ring_area(a.exterior))  # stable: equal areas keep file order
    return [make_shape(labels[a.class_name], (a.exterior, *a.holes)) for a in known]


def ring_area(ring: np.ndarray) -> float:
    """Area (level-0 px²) enclosed by a ring of ``(x, y)`` points (shoelace formula)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _check_label_map(labels: Mapping[str, int]) -> None:
    for name, value in labels.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise AnnotationError(f"label for {name!r} is {value!r}; expected an int 0..255")
        if not 0 <= value <= 255:
            raise AnnotationError(f"label for {name!r} is {value}; expected 0..255 (uint8)")
