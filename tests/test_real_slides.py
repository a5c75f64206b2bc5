"""The real slides of ``../shared/fixtures`` through ``razn segment`` with a tiny trained run:
every output has its slide's geometry (single-level, non-power-of-two and NDPI included),
and every unreadable file is one failed row while the batch goes on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from conftest import SHARED_FIXTURES
from PIL import Image

from razn.cli import main
from razn.outputs import layout
from razn.outputs.batch_table import read_batch_table
from razn.outputs.ome_zarr import pyramid_shapes
from razn.outputs.overlay import legend_height
from razn.slide import open_slide

# slide file: (output folder, level-0 (w, h), mpp, native downsamples)
EXPECTED = {
    "CMU-1-Small-Region.svs": ("CMU-1-Small-Region", (2220, 2967), 0.499, [1.0]),
    "boxes.tiff": ("boxes", (300, 250), 352.778, [1.0, 2.0, 4.0161, 8.0863]),
    "test3-DAPI-2-(387).ndpi": ("test3-DAPI-2-(387)", (3968, 4864), 0.2282, None),
    "small.svs": ("small", (16, 16), 0.499, [1.0]),
    "no_dzi.tif": ("no_dzi", (3072, 3968), 0.9724, [1.0, 2.0, 4.0, 8.0]),
}


@pytest.fixture(scope="module")
def segmented(tiny_run, tmp_path_factory):
    if not (SHARED_FIXTURES / "slides").is_dir():
        pytest.skip(f"real slide fixtures not found at {SHARED_FIXTURES} (../shared is absent)")
    out = tmp_path_factory.mktemp("real")
    pattern = str(SHARED_FIXTURES / "slides" / "*")
    args = ["segment", pattern, "--run", str(tiny_run / "run"), "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return SHARED_FIXTURES / "slides", out


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_outputs_have_the_geometry_of_their_slide(segmented, file):
    slides, out = segmented
    name, (width, height), mpp, downsamples = EXPECTED[file]
    folder = out / name
    with open_slide(slides / file) as slide:
        assert slide.dimensions == (width, height)
        if downsamples is not None:
            assert slide.level_downsamples == pytest.approx(downsamples, rel=1e-4)
        thumbnail = slide.get_thumbnail((1024, 1024)).shape
    summary = json.loads((folder / layout.SUMMARY).read_text(encoding="utf-8"))
    assert summary["dimensions"] == [width, height] and summary["output_downsample"] == 1.0
    assert summary["mpp"] == pytest.approx([mpp, mpp], rel=1e-3)
    assert zarr.open_array(str(folder / layout.LABELS), mode="r").shape == (height, width)
    shapes = pyramid_shapes((height, width))
    for image in (layout.LABELS_OME, layout.ZOOM_LEVELS_OME):
        group = zarr.open_group(str(folder / image), mode="r")
        datasets = group.attrs["multiscales"][0]["datasets"]
        assert [group[d["path"]].shape for d in datasets] == shapes
        for k, dataset in enumerate(datasets):
            scale = dataset["coordinateTransformations"][0]["scale"]
            assert scale == pytest.approx([mpp * 2**k, mpp * 2**k], rel=1e-3)
    with Image.open(folder / layout.OVERLAY) as overlay:
        levels = len(summary["working_downsamples"])
        assert overlay.size == (2 * thumbnail[1] + 8, thumbnail[0] + legend_height(levels))
    features = json.loads((folder / layout.GEOJSON).read_text(encoding="utf-8"))["features"]
    for feature in features:
        points = np.array([p for ring in feature["geometry"]["coordinates"] for p in ring])
        assert points.min() >= 0 and (points.max(axis=0) <= [width, height]).all()


def test_the_batch_table_lists_every_real_slide_done(segmented):
    slides, out = segmented
    rows = read_batch_table(out / "batch.csv")
    assert [(r["slide"], r["output"], r["status"]) for r in rows] == [
        (str(slides / file), EXPECTED[file][0], "done") for file in sorted(EXPECTED)
    ]


def test_bad_files_fail_one_line_each_and_the_batch_goes_on(shared_fixtures, tiny_run, tmp_path):
    bad = sorted((shared_fixtures / "bad").iterdir())
    good = shared_fixtures / "slides" / "small.svs"
    inputs = [str(p) for p in bad] + [str(good)]
    args = ["segment", *inputs, "--run", str(tiny_run / "run"), "--out", str(tmp_path), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    rows = read_batch_table(tmp_path / "batch.csv")
    assert [r["status"] for r in rows] == ["failed"] * len(bad) + ["done"]
    for path, row in zip(bad, rows, strict=False):
        assert row["reason"].startswith(f"{path}: ") and "\n" not in row["reason"]
        assert f"razn: error: {row['reason']}" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.csv", "small"]
