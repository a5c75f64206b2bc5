"""Each slide's output folder: OME-Zarr labels and zoom map, GeoJSON, overlay, summary.

The engine runs an exact colour segmenter (class 1 where red < 128) over a written
TIFF, so every file can be checked against what it must hold.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from conftest import write_tiff_pyramid
from ome_zarr import io as ome_io
from ome_zarr import reader as ome_reader
from PIL import Image
from scipy import ndimage
from shapely.geometry import shape
from test_engine import ColourSegmenter, config_for

from razn.engine import FixedLevel, ZoomEngine
from razn.engine.batch import segment_one, segment_slides
from razn.outputs import layout
from razn.outputs.batch_table import read_batch_table
from razn.outputs.compare import OutputComparison, compare_outputs
from razn.outputs.ome_zarr import NOT_DECIDED, mode_downsample, read_decisions
from razn.outputs.overlay import legend_height
from razn.slide import open_slide

WIDTH, HEIGHT, MPP = 1100, 700, 0.5


def ring_and_square() -> np.ndarray:
    """White with a dark ring (a white hole inside) and a dark square: two regions of class 1."""
    image = np.full((HEIGHT, WIDTH, 3), 230, np.uint8)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    radius = np.hypot(x - 350, y - 350)
    image[(radius < 250) & (radius >= 80)] = (60, 40, 90)
    image[200:400, 800:950] = (60, 40, 90)
    return image


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    image = ring_and_square()
    folder = tmp_path_factory.mktemp("slide_outputs")
    return write_tiff_pyramid(folder / "blob.tiff", [image, image[::2, ::2]], mpp=MPP)


def segment(slide_path, out_dir, version="0.4", level=1):
    models = [ColourSegmenter() for _ in range(3)]
    engine = ZoomEngine(models, FixedLevel(level, name=f"fixed-{level}"), config_for())
    folder, result = segment_one(slide_path, engine, out_dir, {"run": "r"}, ngff_version=version)
    return folder, result


def read_node(path):
    """The label image at ``path`` as ome-zarr-py reads it (it also yields the parent image
    that ``image-label.source`` names, first)."""
    location = ome_io.parse_url(str(path))
    assert location is not None, f"ome-zarr cannot open {path}"
    nodes = list(ome_reader.Reader(location)())
    labels = [n for n in nodes if "Label" in {type(s).__name__ for s in n.specs}]
    named = [n for n in labels if str(n).split(" ")[0].rstrip("/").endswith(f"/{path.name}")]
    assert len(named) == 1, [str(n) for n in nodes]
    return location, named[0]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_label_image_and_zoom_map_read_back_with_ome_zarr(slide_path, tmp_path, version):
    folder, _ = segment(slide_path, tmp_path, version)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        {f.split("/")[0] for f in layout.FILES}
    )
    stitched = np.asarray(zarr.open_array(str(folder / layout.LABELS), mode="r")[:])
    assert stitched.shape == (HEIGHT, WIDTH)
    location, node = read_node(folder / layout.LABELS_OME)
    assert location.version == version
    assert {type(s).__name__ for s in node.specs} == {"Label", "Multiscales"}
    assert node.metadata["axes"] == [
        {"name": axis, "type": "space", "unit": "micrometer"} for axis in ("y", "x")
    ]
    assert [t[0]["scale"] for t in node.metadata["coordinateTransformations"]] == [
        [0.5, 0.5],
        [1.0, 1.0],
        [2.0, 2.0],
    ]
    assert node.metadata["properties"] == {0: {"name": "background"}, 1: {"name": "tumour"}}
    expected = [stitched, mode_downsample(stitched), mode_downsample(mode_downsample(stitched))]
    assert [np.asarray(a).shape for a in node.data] == [(700, 1100), (350, 550), (175, 275)]
    for got, want in zip(node.data, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)
    _, zoom = read_node(folder / layout.ZOOM_LEVELS_OME)
    assert {type(s).__name__ for s in zoom.specs} == {"Label", "Multiscales"}
    assert zoom.metadata["coordinateTransformations"] == node.metadata["coordinateTransformations"]
    assert [np.asarray(a).shape for a in zoom.data] == [(700, 1100), (350, 550), (175, 275)]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_one_ome_zarr_per_slide_holds_the_image_and_both_label_images(
    slide_path, tmp_path, version
):
    out = tmp_path / "out"
    folder, _ = segment(slide_path, out, version)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing written beside OUT
    location = ome_io.parse_url(str(folder / layout.IMAGE_OME))
    assert location is not None and location.version == version
    nodes = list(ome_reader.Reader(location)())
    image = nodes[0]
    labels = [n for n in nodes if "Label" in {type(s).__name__ for s in n.specs}]
    assert {type(s).__name__ for s in image.specs} >= {"Multiscales", "OMERO"}
    assert [a["name"] for a in image.metadata["axes"]] == ["c", "y", "x"]
    assert image.metadata["name"] == "blob"
    full = np.asarray(image.data[0])
    assert full.shape == (3, HEIGHT, WIDTH) and full.dtype == np.uint8  # small: 1 px per label px
    with open_slide(slide_path) as slide:
        np.testing.assert_array_equal(
            np.moveaxis(full, 0, -1), slide.read_region((0, 0), 0, (WIDTH, HEIGHT))
        )
    # the labels, found from the image, in physical space alongside it
    names = sorted(node.metadata.get("name") for node in labels)
    assert names == ["classes", "zoom_levels"]
    for node in labels:
        assert (
            image.metadata["coordinateTransformations"][0][0]["scale"][1:]
            == (node.metadata["coordinateTransformations"][0][0]["scale"])
        )
    group = zarr.open_group(str(folder / layout.IMAGE_OME / "labels"), mode="r")
    listing = group.attrs["ome"]["labels"] if version == "0.5" else group.attrs["labels"]
    assert listing == ["classes", "zoom_levels"]
    label = zarr.open_group(str(folder / layout.LABELS_OME), mode="r")
    image_label = (
        label.attrs["ome"]["image-label"] if version == "0.5" else label.attrs["image-label"]
    )
    assert image_label["source"] == {"image": "../../"}


def test_zoom_map_is_the_level_of_each_break(slide_path, tmp_path):
    folder, result = segment(slide_path, tmp_path, level=1)
    painted = np.full((HEIGHT, WIDTH), NOT_DECIDED, np.uint8)
    for level, _c, _r, x, y, action, _p in read_decisions(folder / layout.DECISIONS):
        if action == "break":
            extent = 16 * (4, 2, 1)[level]
            painted[y : y + extent, x : x + extent] = level
    zoom_map = zarr.open_group(str(folder / layout.ZOOM_LEVELS_OME), mode="r")["0"]
    np.testing.assert_array_equal(zoom_map[:], painted)
    assert set(np.unique(painted).tolist()) == {1, NOT_DECIDED}  # fixed-1 breaks at level 1
    assert result.patches[1] == int((painted == 1).sum()) // 32**2


def test_geojson_has_one_annotation_per_region_with_exact_area(slide_path, tmp_path):
    folder, _ = segment(slide_path, tmp_path)
    stitched = np.asarray(zarr.open_array(str(folder / layout.LABELS), mode="r")[:])
    _, regions = ndimage.label(stitched == 1)
    collection = json.loads((folder / layout.GEOJSON).read_text(encoding="utf-8"))
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert regions == len(features) == 2  # the ring and the square
    for feature in features:
        assert feature["properties"] == {
            "objectType": "annotation",
            "classification": {"name": "tumour", "color": [230, 30, 30]},
        }
    polygons = [shape(f["geometry"]) for f in features]
    assert all(p.is_valid for p in polygons)
    assert sorted(len(p.interiors) for p in polygons) == [0, 1]  # the ring's hole is kept
    assert sum(p.area for p in polygons) == float((stitched == 1).sum())  # level-0 px², d = 1
    assert max(p.bounds[2] for p in polygons) <= WIDTH


def test_summary_and_overlay(slide_path, tmp_path):
    folder, result = segment(slide_path, tmp_path, "0.5")
    summary = json.loads((folder / layout.SUMMARY).read_text(encoding="utf-8"))
    assert summary["slide"] == str(slide_path.resolve())
    assert summary["mode"] == "fixed-1" and summary["run"] == "r"
    assert summary["ngff_version"] == "0.5"
    assert summary["patches"] == result.patches and summary["dimensions"] == [WIDTH, HEIGHT]
    assert summary["mpp"] == [MPP, MPP] and summary["output_downsample"] == 1.0
    assert summary["output_seconds"] > 0
    with Image.open(folder / layout.OVERLAY) as overlay:
        # two panels and a gap; below them the legend: one row per level and "untinted"
        assert overlay.size == (2 * 1024 + 8, round(1024 * HEIGHT / WIDTH) + legend_height(3))


def test_a_failed_slide_leaves_no_partial_folder(tmp_path):
    broken = tmp_path / "broken.tiff"
    broken.write_bytes(b"II*\x00garbage")
    models = [ColourSegmenter() for _ in range(3)]
    engine = ZoomEngine(models, FixedLevel(0), config_for())
    with pytest.raises(Exception, match=r"broken\.tiff"):
        segment_one(broken, engine, tmp_path / "out", {})
    assert list((tmp_path / "out").iterdir()) == []


def test_segment_slides_in_process_with_resume(slide_path, tmp_path):
    models = [ColourSegmenter() for _ in range(3)]
    engine = ZoomEngine(models, FixedLevel(0, name="ud"), config_for())
    missing = tmp_path / "missing.svs"
    out = tmp_path / "out"
    first = segment_slides([slide_path, missing, slide_path], engine, out, {"run": "r"})
    assert [(o.status, o.output) for o in first] == [("done", out / "blob"), ("failed", None)]
    assert first[1].reason == f"{missing}: no such file"
    again = segment_slides([slide_path], engine, out, {"run": "r"}, resume=True)
    assert [(o.status, o.reason, o.patches) for o in again] == [
        ("skipped", "already complete", first[0].patches)
    ]
    rows = read_batch_table(out / "batch.csv")
    assert [(r["output"], r["status"]) for r in rows] == [("blob", "skipped")]


def test_without_viewer_outputs_only_what_scoring_needs_is_written(slide_path, tmp_path):
    models = [ColourSegmenter() for _ in range(3)]
    engine = ZoomEngine(models, FixedLevel(1, name="fixed-1"), config_for())
    folder, _ = segment_one(slide_path, engine, tmp_path, {"run": "r"}, viewer_outputs=False)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([layout.LABELS, layout.DECISIONS, layout.SUMMARY])
    summary = json.loads((folder / layout.SUMMARY).read_text(encoding="utf-8"))
    assert summary["ngff_version"] is None and summary["mode"] == "fixed-1"
    full, _ = segment(slide_path, tmp_path / "full")
    labels = zarr.open_array(str(folder / layout.LABELS), mode="r")[...]
    np.testing.assert_array_equal(labels, zarr.open_array(str(full / layout.LABELS), mode="r")[...])


def test_compare_outputs_finds_each_kind_of_difference(slide_path, tmp_path):
    import shutil

    reference, _ = segment(slide_path, tmp_path / "a")
    again, _ = segment(slide_path, tmp_path / "b")
    assert compare_outputs(reference, again) == OutputComparison([], 0.0)

    changed = tmp_path / "c" / "blob"
    shutil.copytree(reference, changed)
    decisions = (changed / layout.DECISIONS).read_text(encoding="utf-8").splitlines()
    level, col, row, x, y, action, probability = decisions[1].split(",")
    decisions[1] = ",".join([level, col, row, x, y, action, f"{float(probability) + 2e-6:.6f}"])
    (changed / layout.DECISIONS).write_text("\n".join(decisions) + "\n", encoding="utf-8")
    loose = compare_outputs(reference, changed, probability_tolerance=1e-5)
    assert loose.same and loose.max_probability_difference == pytest.approx(2e-6, abs=1e-9)
    assert compare_outputs(reference, changed).differences == [
        "decisions.csv: P(zoom) differs by up to 2.00e-06 (tolerance 0.00e+00)"
    ]

    zoom = zarr.open_group(str(changed / layout.ZOOM_LEVELS_OME), mode="r+")["1"]
    zoom[0, 0] = 7
    labels = zarr.open_array(str(changed / layout.LABELS), mode="r+")
    labels[0, 0] = 1 - labels[0, 0]
    assert compare_outputs(reference, changed, probability_tolerance=1e-5).differences == [
        "slide.ome.zarr/labels/zoom_levels/1: the pixels differ",
        "labels.zarr: the labels differ",
    ]


def test_napari_opens_the_slide_and_both_label_layers_in_one_go(slide_path, tmp_path):
    reader_module = pytest.importorskip("napari_ome_zarr", reason="napari-ome-zarr not installed")
    out = tmp_path / "out"
    folder, _ = segment(slide_path, out)
    path = str(folder / layout.IMAGE_OME)
    reader = reader_module.napari_get_reader(path)
    assert reader is not None
    layers = reader(path)
    images = [(data, meta) for data, meta, kind in layers if kind == "image"]
    labels = [(data, meta) for data, meta, kind in layers if kind == "labels"]
    assert len(images) == 1 and len(labels) == 2
    data, meta = images[0]
    # the RGB pyramid as napari shows NGFF colour: one layer per channel, blended
    assert meta["channel_axis"] == 0 and meta["name"] == ["blob: red", "blob: green", "blob: blue"]
    assert data[0].shape == (3, HEIGHT, WIDTH)
    names = [meta["name"] for _, meta in labels]
    assert [n.rsplit("/", 1)[-1] for n in names] == ["classes", "zoom_levels"]
    classes = labels[0][1]
    assert classes["colormap"][1] == pytest.approx([230 / 255, 30 / 255, 30 / 255, 1.0])
    assert list(classes["properties"]["name"]) == ["background", "tumour"]
    assert labels[0][0][0].shape == (HEIGHT, WIDTH)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing written outside
