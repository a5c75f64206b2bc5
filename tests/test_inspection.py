"""Inspecting zoom decisions: the outputs object, oracle rewards, statistics, figures,
``razn inspect`` and both notebooks, on the demo's pipeline with tiny settings."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from razn.cli import main
from razn.data.manifest import read_manifest
from razn.demo import TINY_SETTINGS, run_demo
from razn.errors import OutputError
from razn.inspection import SlideOutputs, figures
from razn.inspection.oracle import _look_up, decision_rewards
from razn.inspection.outputs import NOT_DECIDED
from razn.inspection.stats import (
    border_pixels,
    border_share_by_level,
    class_level_areas,
    class_share_by_level,
    decision_statistics,
    level_shares,
    tissue_share_by_level,
)

matplotlib.use("Agg")
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-demo")
    run_demo(folder, progress=False, say=lambda _: None, settings=TINY_SETTINGS)
    return folder


@pytest.fixture(scope="module")
def demo_test_entry(demo):
    return read_manifest(demo / "data" / "manifest.csv").split("test")[0]


@pytest.fixture(scope="module")
def outputs(demo, demo_test_entry) -> SlideOutputs:
    return SlideOutputs.open(demo / "outputs" / "cip" / demo_test_entry.slide.stem)


def test_outputs_hold_the_pyramids_and_the_decision_table(outputs):
    w, h = outputs.dimensions
    d = outputs.output_downsample
    assert outputs.labels(0).shape == (math.ceil(h / d), math.ceil(w / d))
    for level in range(1, outputs.pyramid_levels()):
        above = outputs.labels(level - 1).shape
        assert outputs.labels(level).shape == tuple(math.ceil(n / 2) for n in above)
    decisions = outputs.decisions()
    assert list(decisions.columns[:7]) == [
        "level", "col", "row", "x", "y", "action", "zoom_probability",
    ]  # fmt: skip
    # cip decides everything at the finest level: the zoom map says so wherever it decided
    zoom = outputs.zoom_map(0)
    finest = len(outputs.working_downsamples) - 1
    assert set(np.unique(zoom)) <= {finest, NOT_DECIDED}
    breaks = decisions[decisions["action"] == "break"]
    assert set(breaks["level"]) == {finest}
    extent = outputs.extent(finest)
    for x, y in zip(breaks["x"], breaks["y"], strict=True):  # each break square's centre
        cy, cx = int((y + extent / 2) // d), int((x + extent / 2) // d)
        if cy < zoom.shape[0] and cx < zoom.shape[1]:
            assert zoom[cy, cx] == finest
    with pytest.raises(OutputError, match="pyramid level 99 does not exist"):
        outputs.labels(99)


def test_a_folder_that_is_not_an_output_is_refused_in_one_line(tmp_path):
    with pytest.raises(OutputError, match="not an output folder"):
        SlideOutputs.open(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "summary.json").write_text("{}", encoding="utf-8")
    with pytest.raises(OutputError, match=r"missing slide\.ome\.zarr/labels/classes, slide\.ome"):
        SlideOutputs.open(tmp_path / "half")


def test_oracle_rewards_are_looked_up_per_node():
    rewards = {0: np.array([[[0.5]], [[-0.2]]]), 1: np.arange(8.0).reshape(2, 2, 2)}
    roots = np.array([[3, 1], [4, 1]])  # (col, row) of the two cached roots
    decisions = pd.DataFrame(
        {
            "level": [0, 0, 1, 1, 1, 2, 0],
            "col": [3, 4, 9, 7, 6, 12, 0],
            "row": [1, 1, 2, 3, 2, 4, 0],
            "action": ["zoom", "break", "break", "break", "empty", "break", "break"],
        }
    )
    values = _look_up(decisions, rewards, roots, 2)
    # level 1 node (9, 2) lies under root (4, 1) at [row 0, col 1]; (7, 3) under (3, 1) at [1, 1]
    expected = [0.5, -0.2, 5.0, 3.0, np.nan, np.nan, np.nan]
    np.testing.assert_array_equal(values, expected)


def test_oracle_rewards_of_the_demo_slide(demo, demo_test_entry):
    razn = SlideOutputs.open(demo / "outputs" / "razn" / demo_test_entry.slide.stem)
    decisions = razn.decisions()
    rewards = decision_rewards(razn, demo_test_entry.mask)
    finest = len(razn.working_downsamples) - 1
    unknown = (decisions["level"] == finest) | (decisions["action"] == "empty")
    assert np.isnan(rewards[unknown.to_numpy()]).all()
    assert np.isfinite(rewards[~unknown.to_numpy()]).all()


def test_decision_statistics_on_a_hand_made_table():
    decisions = pd.DataFrame(
        {
            "level": [0, 0, 0, 1, 1, 1, 2],
            "action": ["zoom", "zoom", "break", "zoom", "break", "empty", "break"],
        }
    )
    rewards = np.array([0.3, -0.1, 0.2, 0.5, -0.4, np.nan, np.nan])
    table = decision_statistics(decisions, 3, rewards)
    assert table["nodes"].tolist() == [3, 2] and table["zooms"].tolist() == [2, 1]
    assert table["zoom_rate"].tolist() == pytest.approx([2 / 3, 0.5])
    assert table["helped"].tolist() == [2, 1]
    assert table["zoom_rate_helped"].tolist() == pytest.approx([0.5, 1.0])
    assert table["zoom_rate_not_helped"].tolist() == pytest.approx([1.0, 0.0])


def test_area_shares_of_tissue_and_tumour_border():
    zoom = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [NOT_DECIDED] * 4], np.uint8)
    truth = np.array([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], np.uint8)
    assert tissue_share_by_level(zoom, 3) == pytest.approx([4 / 12, 4 / 12, 4 / 12])
    border = border_pixels(truth)
    assert border.sum() == 7  # the three tumour pixels, their left neighbours and (3, 3)
    # decided border pixels: (0,2),(0,3),(1,2),(1,3) at level 1; (2,2),(2,3) at level 2
    assert border_share_by_level(zoom, truth, 3) == pytest.approx([0.0, 4 / 6, 2 / 6])


def test_area_and_border_shares_per_class():
    zoom = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [NOT_DECIDED] * 4], np.uint8)
    truth = np.array([[1, 1, 0, 3], [1, 1, 0, 3], [2, 2, 0, 3], [2, 2, 0, 0]], np.uint8)
    # class 1 all at level 0; class 2's decided pixels (row 2) at level 2; class 3 split 2:1
    assert class_share_by_level(zoom, truth, 1, 3) == pytest.approx([1.0, 0.0, 0.0])
    assert class_share_by_level(zoom, truth, 2, 3) == pytest.approx([0.0, 0.0, 1.0])
    assert class_share_by_level(zoom, truth, 3, 3) == pytest.approx([0.0, 2 / 3, 1 / 3])
    # the counts behind them, every class at once (int8 map: -1 is not decided)
    areas = class_level_areas(zoom.astype(np.int16) - 256 * (zoom == NOT_DECIDED), truth, 4, 3)
    assert areas.tolist() == [[0, 2, 1], [4, 0, 0], [0, 0, 2], [0, 2, 1]]
    assert level_shares(areas)[1].tolist() == [1.0, 0.0, 0.0]
    assert level_shares(np.zeros((1, 3), np.int64)).tolist() == [[0.0, 0.0, 0.0]]
    # class 1's border pixels: (0,1), (1,0), (1,1) — all decided at level 0
    assert border_share_by_level(zoom, truth, 3, 1) == pytest.approx([1.0, 0.0, 0.0])
    # class 3 is all border (its neighbours are 0): 2 of its 3 decided pixels at level 1
    assert border_share_by_level(zoom, truth, 3, 3) == pytest.approx([0.0, 2 / 3, 1 / 3])


def test_every_figure_draws(outputs, demo_test_entry, tmp_path):
    rows = [
        {"mode": "razn", "lambda": 0.01, "seed": 0, "dice": 0.9, "seconds": 2.0, "slides": 1},
        {"mode": "razn", "lambda": 0.04, "seed": 0, "dice": 0.8, "seconds": 1.0, "slides": 1},
        {"mode": "cip", "lambda": None, "seed": None, "dice": 0.92, "seconds": 4.0, "slides": 1},
    ]
    drawn = [
        figures.zoom_map_figure(outputs),
        figures.zoom_probability_figure(outputs),
        figures.truth_figure(outputs, demo_test_entry.mask),
        figures.region_figure(outputs, (0, 0), round(outputs.extent(0))),
        figures.decision_statistics_figure(outputs),
        figures.area_by_level_figure(outputs, demo_test_entry.mask),
        figures.pareto_figure(rows, 0.01),
    ]
    for index, figure in enumerate(drawn):
        assert figure.axes, f"figure {index} has no axes"
        figure.savefig(tmp_path / f"{index}.png")
    curve = drawn[-1].axes[0].lines[0]
    assert curve.get_xdata().tolist() == [1.0, 2.0]  # razn's λ curve, by seconds


def test_razn_inspect_writes_the_figures_and_a_page(demo, demo_test_entry, tmp_path):
    folder = demo / "outputs" / "razn" / demo_test_entry.slide.stem
    args = ["inspect", str(folder), "--truth", str(demo_test_entry.mask), "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == [
        "area_by_level.png",
        "decision_stats.png",
        "region.png",
        "truth.png",
        "zoom_map.png",
        "zoom_probability.png",
    ]
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert all(f"src='{name}'" in page for name in pngs) and "zoom_rate_helped" in page
    missing = CliRunner().invoke(main, ["inspect", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "not an output folder" in missing.output


@pytest.mark.parametrize("name", ["inspect_zoom_decisions.ipynb", "train_and_compare.ipynb"])
def test_notebook_runs_on_tiny_settings(name, demo, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    monkeypatch.setenv("RAZN_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("RAZN_DEMO_DIR", str(demo))
    monkeypatch.setenv("RAZN_NOTEBOOK_DIR", str(demo))  # reuses the demo's data and segmenters
    monkeypatch.setenv("RAZN_BENCHMARK", str(demo / "no-benchmark"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute(env=dict(os.environ))  # a failing cell raises CellExecutionError
    figure_cells = [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and re.search(r"_figure\(|\bFigure\(", cell.source)
    ]
    assert figure_cells
    for cell in figure_cells:  # a figure that only prints "<Figure size …>" shows nothing
        kinds = [set(output.get("data", {})) for output in cell.outputs]
        assert any("image/png" in k for k in kinds), f"no image in the cell:\n{cell.source}"


def test_zoom_levels_go_from_blue_to_red_whatever_their_number():
    from razn.outputs.overlay import LEVEL_RAMP, level_colours

    three = level_colours(3)
    np.testing.assert_array_equal(three[0], LEVEL_RAMP[0])  # coarsest: blue
    np.testing.assert_array_equal(three[-1], LEVEL_RAMP[-1])  # finest: red, not green
    np.testing.assert_array_equal(three[1], LEVEL_RAMP[2])
    assert level_colours(7).shape == (7, 3) and (level_colours(7)[-1] == LEVEL_RAMP[-1]).all()


def test_the_overlay_carries_a_legend_of_its_levels(tmp_path):
    from razn.outputs.overlay import level_colours, overlay_image

    thumbnail = np.full((40, 50, 3), 200, np.uint8)
    levels = np.full((40, 50), -1, np.int8)
    levels[:20] = 2
    image = overlay_image(thumbnail, np.zeros((40, 50), np.uint8), levels, (4.0, 2.0, 1.0))
    assert image.shape[1] == 2 * 50 + 8 and image.shape[0] == 40 + 4 * 16 + 8
    red = level_colours(3)[2]
    right = image[:20, 58:].astype(float)
    expected = 0.55 * 200 + 0.45 * red
    np.testing.assert_allclose(right[0, 0], expected, atol=1)
    legend = image[40:]
    assert (legend != 255).any()  # boxes and text drawn on the white strip


def test_the_zoom_map_figure_says_untinted_means_no_tissue(demo, demo_test_entry):
    folder = demo / "outputs" / "razn" / demo_test_entry.slide.stem
    figure = figures.zoom_map_figure(SlideOutputs.open(folder))
    texts = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert texts[-1] == "untinted: no tissue" and texts[0].startswith("level 0 (×4)")
