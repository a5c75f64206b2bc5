"""QuPath GeoJSON: exact pixel-edge outlines in level-0 pixels, holes as interior rings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from razn.errors import RaznError
from razn.outputs.geojson import (
    labels_to_geojson,
    mask_polygons,
    ome_zarr_to_geojson,
    write_geojson,
)
from razn.outputs.ome_zarr import write_label_image

NAMES = ["background", "tumour", "stroma"]
COLOURS = [(0, 0, 0), (200, 0, 0), (0, 150, 0)]


def rings(feature: dict) -> list[list[tuple[float, float]]]:
    return [[tuple(p) for p in ring] for ring in feature["geometry"]["coordinates"]]


def same_ring(ring: list[tuple[float, float]], corners: list[tuple[float, float]]) -> bool:
    """``ring`` is closed and visits exactly ``corners``, in either order and rotation."""
    if ring[0] != ring[-1] or len(ring) != len(corners) + 1:
        return False
    body = ring[:-1]
    start = body.index(corners[0]) if corners[0] in body else -1
    rotated = body[start:] + body[:start]
    return rotated == corners or rotated == [corners[0], *corners[1:][::-1]]


def square_with_hole() -> np.ndarray:
    labels = np.zeros((12, 14), np.uint8)
    labels[2:10, 3:11] = 1  # rows 2-9, columns 3-10
    labels[4:7, 5:8] = 0  # the hole: rows 4-6, columns 5-7
    return labels


def test_square_with_a_hole_is_one_polygon_with_an_interior_ring() -> None:
    collection = labels_to_geojson(square_with_hole(), 4.0, NAMES, COLOURS)
    assert collection["type"] == "FeatureCollection"
    [feature] = collection["features"]
    assert feature["geometry"]["type"] == "Polygon"
    exterior, hole = rings(feature)
    assert same_ring(exterior, [(12, 8), (44, 8), (44, 40), (12, 40)])
    assert same_ring(hole, [(20, 16), (32, 16), (32, 28), (20, 28)])
    polygon = shapely.geometry.shape(feature["geometry"])
    assert polygon.is_valid and polygon.area == (64 - 9) * 16
    assert polygon.exterior.is_ccw and not polygon.interiors[0].is_ccw  # RFC 7946 order


def test_single_pixel_is_its_level0_square() -> None:
    labels = np.zeros((5, 5), np.uint8)
    labels[2, 3] = 2  # i = 2, j = 3
    [feature] = labels_to_geojson(labels, 2.5, NAMES)["features"]
    [ring] = rings(feature)
    assert same_ring(ring, [(7.5, 5.0), (10.0, 5.0), (10.0, 7.5), (7.5, 7.5)])


def test_two_blobs_are_two_features_and_classification_is_set() -> None:
    labels = np.zeros((10, 10), np.uint8)
    labels[1:3, 1:3] = 1
    labels[6:9, 5:9] = 1
    labels[0:2, 7:10] = 2
    features = labels_to_geojson(labels, 1.0, NAMES, COLOURS)["features"]
    by_class = [f["properties"]["classification"]["name"] for f in features]
    assert sorted(by_class) == ["stroma", "tumour", "tumour"]
    for feature in features:
        props = feature["properties"]
        assert props["objectType"] == "annotation"
        name = props["classification"]["name"]
        assert props["classification"]["color"] == list(COLOURS[NAMES.index(name)])
    areas = sorted(shapely.geometry.shape(f["geometry"]).area for f in features)
    assert areas == [4, 6, 12]


def test_blob_inside_a_hole_is_a_separate_feature() -> None:
    labels = square_with_hole()
    labels[5, 6] = 1  # alone in the middle of the hole
    features = labels_to_geojson(labels, 4.0, NAMES)["features"]
    assert len(features) == 2
    shapes = sorted((shapely.geometry.shape(f["geometry"]) for f in features), key=lambda p: p.area)
    assert shapes[0].area == 16 and len(shapes[0].interiors) == 0
    assert len(shapes[1].interiors) == 1 and shapes[1].area == (64 - 9) * 16
    assert shapes[0].within(shapely.Polygon(shapes[1].interiors[0]))


def test_empty_and_full_masks() -> None:
    assert mask_polygons(np.zeros((3, 4), bool)) == []
    assert labels_to_geojson(np.zeros((3, 3), np.uint8), 1.0, NAMES)["features"] == []
    [polygon] = mask_polygons(np.ones((3, 4), bool))
    assert polygon.equals(shapely.box(0, 0, 4, 3))


def test_diagonal_pixels_are_separate_regions() -> None:
    mask = np.array([[1, 0], [0, 1]], bool)
    polygons = mask_polygons(mask)
    assert len(polygons) == 2 and all(p.area == 1 for p in polygons)


def test_a_hole_touching_the_outside_at_a_corner_stays_valid() -> None:
    mask = np.ones((3, 3), bool)
    mask[1, 1] = mask[2, 2] = False  # the centre meets the open corner diagonally
    [polygon] = mask_polygons(mask)
    assert polygon.is_valid and polygon.area == 7
    two_holes = np.ones((6, 6), bool)
    two_holes[1:3, 1:3] = two_holes[3:5, 3:5] = False  # holes touching at one corner
    [polygon] = mask_polygons(two_holes)
    assert polygon.is_valid and polygon.area == 28 and len(polygon.interiors) == 2


@settings(max_examples=150, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_polygons_cover_exactly_the_mask(mask: np.ndarray) -> None:
    polygons = mask_polygons(mask)
    _, regions = ndimage.label(mask)
    assert len(polygons) == regions
    assert all(p.is_valid for p in polygons)
    assert sum(p.area for p in polygons) == mask.sum()
    union = shapely.union_all(polygons)
    rows, cols = np.indices(mask.shape)
    inside = shapely.contains_xy(union, cols + 0.5, rows + 0.5)
    np.testing.assert_array_equal(inside, mask)


def test_min_area_drops_small_regions() -> None:
    labels = np.zeros((10, 10), np.uint8)
    labels[0, 0] = 1
    labels[4:8, 4:8] = 1
    features = labels_to_geojson(labels, 2.0, NAMES, min_area_px=5.0)["features"]
    assert len(features) == 1  # the single pixel is 4 level-0 px²
    assert shapely.geometry.shape(features[0]["geometry"]).area == 64


def test_large_images_are_traced_subsampled_within_their_extent() -> None:
    labels = np.zeros((103, 61), np.uint8)
    labels[:, 40:] = 1
    features = labels_to_geojson(labels, 2.0, NAMES, max_side=25)["features"]  # factor 5
    [feature] = features
    coords = np.asarray(rings(feature)[0])
    assert coords[:, 0].max() == 61 * 2 and coords[:, 1].max() == 103 * 2  # clamped
    # sampled columns 2, 7, ..., 62 (clipped to 60): class 1 from the 9th, x = 8 · 5 · 2
    assert set(coords[:, 0].tolist()) == {80, 122}
    assert set(coords[:, 1].tolist()) == {0, 206}


def test_written_file_is_the_json_qupath_expects(tmp_path: Path) -> None:
    collection = labels_to_geojson(square_with_hole(), 4.0, NAMES, COLOURS)
    path = write_geojson(tmp_path / "labels.geojson", collection)
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded["type"] == "FeatureCollection"
    for feature in loaded["features"]:
        assert feature["type"] == "Feature"
        assert set(feature) >= {"geometry", "properties"}
        assert feature["geometry"]["type"] == "Polygon"
        assert feature["properties"]["objectType"] == "annotation"
        assert set(feature["properties"]["classification"]) == {"name", "color"}
        assert shapely.geometry.shape(feature["geometry"]).is_valid


def test_from_ome_zarr_traces_a_pyramid_level(tmp_path: Path) -> None:
    labels = np.zeros((1200, 800), np.uint8)
    labels[100:700, 200:600] = 1
    labels[300:400, 300:400] = 0
    labels[900:1100, 100:300] = 2
    path = write_label_image(tmp_path / "l.ome.zarr", labels, 4.0, (0.5, 0.5), NAMES, COLOURS)
    direct = labels_to_geojson(labels, 4.0, NAMES, COLOURS)
    assert ome_zarr_to_geojson(path) == direct  # level 0 fits
    coarse = ome_zarr_to_geojson(path, max_side=600)  # level 1, 8 level-0 px a pixel
    assert coarse == direct  # all edges fall on even pixels, so nothing moves
    with pytest.raises(RaznError, match="not a razn OME-Zarr"):
        ome_zarr_to_geojson(zarr.open_group(str(tmp_path / "plain.zarr"), mode="w").store.root)
    names = [f["properties"]["classification"] for f in coarse["features"]]
    assert names == [
        {"name": "tumour", "color": [200, 0, 0]},
        {"name": "stroma", "color": [0, 150, 0]},
    ]
