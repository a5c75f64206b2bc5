"""Polygon annotations: parsing, exact rasterisation, pyramidal TIFF output, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from razn.data.annotations import (
    UNCLASSIFIED,
    Annotation,
    rasterize,
    rasterize_to_tiff,
    read_annotations,
)
from razn.data.masks import open_mask
from razn.errors import AnnotationError, SlideError

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    """A closed GeoJSON ring, as QuPath writes it (the first point repeated last)."""
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def feature(rings: list[Any], name: str = "Tumor", kind: str = "Polygon") -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": kind, "coordinates": rings},
        "properties": {"objectType": "annotation", "classification": {"name": name}},
    }


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def box(a: int, b: int, size: int = 40) -> np.ndarray:
    """``uint8 [size, size]`` with 1 on rows and columns ``a .. b-1``."""
    out = np.zeros((size, size), np.uint8)
    out[a:b, a:b] = 1
    return out


# --- pixel convention, exact values --------------------------------------------------


def test_square_covers_exactly_the_pixels_whose_centres_are_inside() -> None:
    a = Annotation("Tumor", np.array(square(10, 10, 30, 30)[:-1], float))
    np.testing.assert_array_equal(rasterize([a], (40, 40)), box(10, 30))
    np.testing.assert_array_equal(rasterize([a], (20, 20), 2), box(5, 15, 20))
    np.testing.assert_array_equal(rasterize([a], (10, 10), 4), box(2, 7, 10))


def test_triangle_edge_through_pixel_centres() -> None:
    # x + y < 10 holds for centres (j + .5, i + .5) when i + j <= 8; centres with
    # i + j = 9 lie on the hypotenuse, a right/bottom edge, and stay outside.
    a = Annotation("Tumor", np.array([[0, 0], [10, 0], [0, 10]], float))
    i, j = np.mgrid[:12, :12]
    np.testing.assert_array_equal(rasterize([a], (12, 12)), (i + j <= 8).astype(np.uint8))


def test_centres_on_a_left_or_top_edge_are_inside() -> None:
    a = Annotation("Tumor", np.array(square(10.5, 10.5, 20.5, 20.5)[:-1], float))
    np.testing.assert_array_equal(rasterize([a], (40, 40)), box(10, 20))


def test_downsamples_are_consistent() -> None:
    ring = np.array([[3.3, 5.1], [117.9, 20.4], [90.2, 101.7], [40.0, 77.7], [10.1, 60.0]])
    polygon = [Annotation("Tumor", ring)]
    fine = rasterize(polygon, (128, 128), 1)
    for d in (2, 4):
        coarse = rasterize(polygon, (128 // d, 128 // d), d)
        # Same sample points: the coarse centre (j + .5)·d is the corner shared by the
        # fine pixels d·j + d/2 - 1 and d·j + d/2; they agree away from the boundary.
        picked = fine[d // 2 :: d, d // 2 :: d]
        assert np.mean(coarse != picked) < 0.05
        assert int(coarse.sum()) * d * d == pytest.approx(int(fine.sum()), rel=0.05)


# --- holes, multipolygons, drawing order ---------------------------------------------


def test_square_with_a_square_hole(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "a.geojson", [feature([square(0, 0, 40, 40), square(10, 10, 30, 30)])]
    )
    (annotation,) = read_annotations(path)
    assert annotation.class_name == "Tumor" and len(annotation.holes) == 1
    np.testing.assert_array_equal(rasterize([annotation], (40, 40)), box(0, 40) - box(10, 30))


def test_polygon_inside_a_hole_is_filled(tmp_path: Path) -> None:
    data = {
        "type": "FeatureCollection",
        "features": [
            feature([square(0, 0, 40, 40), square(10, 10, 30, 30)], "Stroma"),
            feature([square(15, 15, 25, 25)], "Tumor"),
        ],
    }
    annotations = read_annotations(write_json(tmp_path / "a.geojson", data))
    mask = rasterize(annotations, (40, 40), label_map={"Stroma": 2, "Tumor": 1})
    expected = 2 * (box(0, 40) - box(10, 30)) + box(15, 25)
    np.testing.assert_array_equal(mask, expected)


def test_multipolygon_parts_keep_their_holes(tmp_path: Path) -> None:
    parts = [[square(0, 0, 10, 10)], [square(20, 20, 40, 40), square(25, 25, 35, 35)]]
    annotations = read_annotations(
        write_json(tmp_path / "a.geojson", feature(parts, "Tumour", "MultiPolygon"))
    )
    assert [len(a.holes) for a in annotations] == [0, 1]
    expected = box(0, 10) + box(20, 40) - box(25, 35)
    np.testing.assert_array_equal(rasterize(annotations, (40, 40)), expected)


ASAP = """<?xml version="1.0"?>
<ASAP_Annotations>
  <Annotations>
    <Annotation Name="Annotation 1" Type="Polygon" PartOfGroup="_2" Color="#64FE2E">
      <Coordinates>
        <Coordinate Order="2" X="20.0" Y="20" />
        <Coordinate Order="0" X="1.0e1" Y="10" />
        <Coordinate Order="1" X="20" Y="10" />
        <Coordinate Order="3" X="10" Y="20" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Annotation 0" Type="Polygon" PartOfGroup="_0" Color="#F4FA58">
      <Coordinates>
        <Coordinate Order="0" X="0" Y="0" />
        <Coordinate Order="1" X="40" Y="0" />
        <Coordinate Order="2" X="40" Y="40" />
        <Coordinate Order="3" X="0,0" Y="40" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Marker" Type="Dot" PartOfGroup="None">
      <Coordinates><Coordinate Order="0" X="5" Y="5" /></Coordinates>
    </Annotation>
  </Annotations>
  <AnnotationGroups><Group Name="_0" PartOfGroup="None" Color="#FF0000"/></AnnotationGroups>
</ASAP_Annotations>
"""


def test_asap_exclusion_carves_out_tumour_even_when_listed_first(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text(ASAP)
    annotations = read_annotations(tmp_path / "a.xml")
    assert [a.class_name for a in annotations] == ["_2", "_0"]  # the dot is skipped
    np.testing.assert_array_equal(annotations[0].exterior, [[10, 10], [20, 10], [20, 20], [10, 20]])
    np.testing.assert_array_equal(rasterize(annotations, (40, 40)), box(0, 40) - box(10, 20))


# --- class names ---------------------------------------------------------------------


def test_class_name_sources(tmp_path: Path) -> None:
    ring = [square(0, 0, 4, 4)]
    as_string = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": ring}}
    features = [
        dict(as_string, properties={"classification": "Stroma"}),
        dict(as_string, properties={"name": "Necrosis"}),
        dict(as_string, properties={}),
    ]
    names = [a.class_name for a in read_annotations(write_json(tmp_path / "a.json", features))]
    assert names == ["Stroma", "Necrosis", UNCLASSIFIED]


def test_unknown_classes_fail_or_are_skipped(tmp_path: Path) -> None:
    path = write_json(tmp_path / "a.geojson", [feature([square(0, 0, 4, 4)], "Stroma")])
    annotations = read_annotations(path)
    with pytest.raises(AnnotationError, match=r"\['Stroma'\] have no label; known: \[") as info:
        rasterize(annotations, (8, 8))
    assert "a.geojson" in str(info.value)
    assert not rasterize(annotations, (8, 8), skip_unknown=True).any()
    assert rasterize(annotations, (8, 8), label_map={"Stroma": 7}).max() == 7


def test_points_and_lines_are_skipped_with_a_warning(tmp_path: Path) -> None:
    point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}
    path = write_json(tmp_path / "a.geojson", [point, feature([square(0, 0, 4, 4)])])
    with pytest.warns(UserWarning, match="Point"):
        assert len(read_annotations(path)) == 1


# --- malformed files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bad.geojson", "{not json", "invalid JSON"),
        ("bad.geojson", '{"foo": 1}', "not GeoJSON"),
        ("bad.geojson", json.dumps(feature([[[0, 0], [1, 1], [0, 0]]])), "at least 3"),
        ("bad.geojson", json.dumps(feature([[["a", 0], [1, 1], [2, 0]]])), "not [x, y] numbers"),
        ("bad.geojson", json.dumps(feature([], kind="Polygon")), "no rings"),
        ("bad.geojson", json.dumps(feature([[0, 0]], kind="Circle")), "geometry type 'Circle'"),
        ("bad.xml", "<ASAP_Annotations><Annotations/></ASAP_Annotations>", "no Annotations"),
        (
            "bad.xml",
            '<ASAP_Annotations><Annotations><Annotation Name="x">'
            "</Annotation></Annotations></ASAP_Annotations>",
            "has no Coordinates",
        ),
        ("bad.xml", "<ASAP_Annotations><oops></ASAP_Annotations>", "invalid XML"),
        ("bad.xml", "<svg></svg>", "expected <ASAP_Annotations>"),
        ("bad.txt", "hello", "not an annotation file"),
    ],
)
def test_malformed_files_name_the_file_and_the_reason(
    tmp_path: Path, name: str, content: str, reason: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(AnnotationError) as info:
        read_annotations(tmp_path / name)
    message = str(info.value)
    assert message.startswith(str(tmp_path / name)) and reason in message
    assert "\n" not in message


def test_missing_annotation_file(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="not found"):
        read_annotations(tmp_path / "nope.geojson")


# --- tiled pyramidal TIFF ------------------------------------------------------------


def _shapes() -> list[Annotation]:
    ring = np.array([[3.3, 5.1], [190.9, 20.4], [150.2, 131.7], [40.0, 97.7], [10.1, 60.0]])
    hole = np.array([[60.0, 40.0], [100.0, 40.0], [80.0, 80.0]])
    return [Annotation("Tumor", ring, (hole,)), Annotation("_2", np.array(square(70, 0, 90, 140)))]


def test_tiff_levels_match_in_memory_rasterisation(tmp_path: Path) -> None:
    out = rasterize_to_tiff(_shapes(), (201, 141), tmp_path / "m.tif", tile=32)
    with tifffile.TiffFile(out) as tif:
        levels = tif.series[0].levels
        assert [lv.shape for lv in levels] == [(141, 201), (71, 101), (36, 51), (18, 26)]
        page = levels[0].keyframe
        assert page.is_tiled and page.compression == 8 and page.dtype == np.uint8
        for k, level in enumerate(levels):
            d = 2**k
            expected = rasterize(_shapes(), (level.shape[1], level.shape[0]), d)
            np.testing.assert_array_equal(level.asarray(), expected, err_msg=f"level {k}")
    assert not (tmp_path / "m.tif.partial").exists()


def test_tiff_reads_back_through_the_mask_reader(tmp_path: Path) -> None:
    out = rasterize_to_tiff(_shapes(), (402, 282), tmp_path / "m.tif", downsample=2, tile=16)
    with open_mask(out, (402, 282)) as mask:
        assert mask.downsample == 2.0
        assert [lv.downsample for lv in mask.levels] == [2.0, 4.0, 8.0, 16.0, 32.0]
        for d in (2, 4, 8):
            size = (-(-402 // d), -(-282 // d))
            np.testing.assert_array_equal(mask.read_all(d), rasterize(_shapes(), size, d))


# --- command line --------------------------------------------------------------------


def cli(args: list[str]) -> Any:
    """Run ``razn rasterize`` (the command alone, so RaznError reaches the test)."""
    from razn.cli.rasterize import command

    return CliRunner().invoke(command, args)


def test_cli_rasterizes_with_dimensions_and_labels(tmp_path: Path) -> None:
    data = [feature([square(0, 0, 40, 40)], "Stroma"), feature([square(10, 10, 20, 20)])]
    path = write_json(tmp_path / "a.geojson", data)
    out = tmp_path / "m.tif"
    args = [str(path), "--slide", "40x40", "--out", str(out), "--label", "Stroma=2"]
    result = cli(args)
    assert result.exit_code == 0, result.output
    expected = 2 * box(0, 40) - box(10, 20)
    np.testing.assert_array_equal(tifffile.imread(out), expected)


def test_cli_reports_bad_labels_and_slides(tmp_path: Path) -> None:
    path = write_json(tmp_path / "a.geojson", [feature([square(0, 0, 4, 4)])])
    base = [str(path), "--out", str(tmp_path / "m.tif")]
    result = cli([*base, "--slide", "8x8", "--label", "Tumor=300"])
    assert isinstance(result.exception, AnnotationError)
    result = cli([*base, "--slide", str(tmp_path / "missing.svs")])
    assert isinstance(result.exception, SlideError)
    assert "missing.svs" in str(result.exception)


@pytest.mark.skipif(not (FIXTURES / "slides").exists(), reason=f"{FIXTURES} not found")
def test_cli_reads_slide_dimensions_with_openslide(tmp_path: Path) -> None:
    path = write_json(tmp_path / "a.geojson", [feature([square(0, 0, 100, 50)])])
    out = tmp_path / "m.tif"
    slide = FIXTURES / "slides" / "boxes.tiff"
    result = cli([str(path), "--slide", str(slide), "--out", str(out), "--downsample", "2"])
    assert result.exit_code == 0, result.output
    assert tifffile.imread(out).shape == (125, 150)
    broken = FIXTURES / "bad" / "broken.svs"
    if broken.exists():
        result = cli([str(path), "--slide", str(broken), "--out", str(out)])
        assert isinstance(result.exception, SlideError) and "broken.svs" in str(result.exception)


# --- four classes, in and out -------------------------------------------------------

FOUR = ["normal", "benign", "in_situ", "invasive"]
FOUR_LABELS = ["--label", "Benign=1", "--label", "In situ=2", "--label", "Invasive=3"]


def test_four_qupath_classes_round_trip_to_razn_geojson(tmp_path: Path) -> None:
    """QuPath GeoJSON with four classifications → mask → razn's GeoJSON: the same classes
    over the same squares (at 2 level-0 px per mask pixel)."""
    from razn.outputs.geojson import ome_zarr_to_geojson
    from razn.outputs.ome_zarr import write_label_image

    drawn = {"Benign": (0, 0, 40, 40), "In situ": (40, 0, 80, 40), "Invasive": (0, 40, 40, 80)}
    data = [feature([square(0, 0, 80, 80)], "Normal")]
    data += [feature([square(*box_)], name) for name, box_ in drawn.items()]
    path = write_json(tmp_path / "four.geojson", data)
    out = tmp_path / "four_mask.tif"
    args = [str(path), "--slide", "80x80", "--out", str(out), "--downsample", "2"]
    result = cli([*args, *FOUR_LABELS, "--label", "Normal=0", "--no-default-labels"])
    assert result.exit_code == 0, result.output
    mask = tifffile.imread(out)
    expected = np.zeros((40, 40), np.uint8)
    expected[:20, :20], expected[:20, 20:], expected[20:, :20] = 1, 2, 3
    np.testing.assert_array_equal(mask, expected)
    labels = write_label_image(tmp_path / "l.ome.zarr", mask, 2.0, None, FOUR)
    regions = ome_zarr_to_geojson(labels)["features"]
    found = {f["properties"]["classification"]["name"]: f["geometry"] for f in regions}
    assert sorted(found) == ["benign", "in_situ", "invasive"]  # class 0 is not a region
    for name, (x0, y0, x1, y1) in zip(
        ("benign", "in_situ", "invasive"), drawn.values(), strict=True
    ):
        assert found[name]["type"] == "Polygon"
        xs, ys = zip(*found[name]["coordinates"][0], strict=True)
        assert (min(xs), min(ys), max(xs), max(ys)) == (x0, y0, x1, y1)


ASAP_FOUR = """<?xml version="1.0"?>
<ASAP_Annotations><Annotations>
{}
</Annotations></ASAP_Annotations>
"""


def asap_square(group: str, x0: int, y0: int, x1: int, y1: int) -> str:
    corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    points = "".join(
        f'<Coordinate Order="{i}" X="{x}" Y="{y}" />' for i, (x, y) in enumerate(corners)
    )
    return (
        f'<Annotation Name="a" Type="Polygon" PartOfGroup="{group}">'
        f"<Coordinates>{points}</Coordinates></Annotation>"
    )


def test_four_asap_groups_and_an_unknown_one_named_in_one_line(tmp_path: Path) -> None:
    squares = [
        asap_square("Benign", 0, 0, 20, 20),
        asap_square("In situ", 20, 0, 40, 20),
        asap_square("Invasive", 0, 20, 20, 40),
    ]
    path = tmp_path / "four.xml"
    path.write_text(ASAP_FOUR.format("\n".join(squares)))
    out = tmp_path / "m.tif"
    result = cli([str(path), "--slide", "40x40", "--out", str(out), *FOUR_LABELS])
    assert result.exit_code == 0, result.output
    mask = tifffile.imread(out)
    assert [int(mask[5, 5]), int(mask[5, 25]), int(mask[25, 5]), int(mask[25, 25])] == [1, 2, 3, 0]
    path.write_text(
        ASAP_FOUR.format("\n".join([*squares, asap_square("Necrosis", 20, 20, 40, 40)]))
    )
    result = cli([str(path), "--slide", "40x40", "--out", str(out), *FOUR_LABELS])
    assert isinstance(result.exception, AnnotationError)
    message = str(result.exception)
    assert "Necrosis" in message and "four.xml" in message and "\n" not in message
