"""End to end with tiny budgets: razn train, then razn segment in every mode, through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from razn.cli import main


@pytest.fixture(scope="module")
def trained_run(tiny_run):
    return tiny_run


def _segment(folder, mode, *extra):
    slide = folder / "data" / "slides" / "synth_002.tiff"  # the test split
    out = folder / "out" / mode
    args = ["segment", str(slide), "--run", str(folder / "run"), "--out", str(out), "--mode", mode]
    result = CliRunner().invoke(main, [*args, "--quiet", *extra])
    return result, out / "synth_002"


def test_train_writes_segmenters_and_policies(trained_run):
    run = trained_run / "run"
    assert sorted(p.name for p in (run / "segmenters").glob("*.safetensors")) == [
        "level_0.safetensors",
        "level_1.safetensors",
        "level_2.safetensors",
    ]
    policies = run / "policies" / "lam_0.01"
    assert (policies / "level_0.safetensors").is_file() and (
        policies / "level_1.safetensors"
    ).is_file()
    report = json.loads((policies / "level_1.json").read_text())
    assert 0.0 <= report["zoom_rate"] <= 1.0 and report["patches"] > 0
    assert list(run.joinpath("cache").glob("*.zarr"))  # the reward cache was built


def _decision_counts(out, num_levels: int) -> dict[str, list[int]]:
    """Rows of decisions.csv per action and level."""
    counts = {action: [0] * num_levels for action in ("break", "zoom", "empty")}
    lines = (out / "decisions.csv").read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        level, _, _, _, _, action, _ = line.split(",")
        counts[action][int(level)] += 1
    return counts


@pytest.mark.parametrize(
    ("mode", "segmented_levels"),
    [("razn", None), ("ud", {0}), ("cip", {2}), ("fixed-1", {1})],
)
def test_every_mode_writes_the_layout_and_segments_exactly_its_breaks(
    trained_run, mode, segmented_levels
):
    """The documented files, and image-first accounting: a patch is segmented where (and
    only where) its node breaks, a zoom's r² children are the next level's nodes, and the
    zoom map shows exactly the levels that broke."""
    result, out = _segment(trained_run, mode)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "decisions.csv",
        "labels.zarr",
        "overlay.png",
        "regions.geojson",
        "slide.ome.zarr",
        "summary.json",
    ]
    assert sorted(p.name for p in (out / "slide.ome.zarr" / "labels").iterdir() if p.is_dir()) == [
        "classes",
        "zoom_levels",
    ]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("mode", "seconds", "patches", "level0_pixels_read", "timings"):
        assert key in summary
    assert set(summary["timings"]) >= {"read", "segment", "policy", "write"}
    labels = zarr.open_array(str(out / "labels.zarr"), mode="r")[:]
    assert labels.shape == (576, 640) and labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) <= {0, 1}
    counts = _decision_counts(out, 3)
    assert summary["patches"] == counts["break"]
    assert summary["zoomed"] == counts["zoom"]
    assert summary["nodes"] == [
        b + z + e for b, z, e in zip(counts["break"], counts["zoom"], counts["empty"], strict=True)
    ]
    for level in (1, 2):  # every zoom has r² = 4 children, visited one level down, and
        # every quadrant a refine level refined is one more node there
        refined = summary["refined"][level - 1]
        assert summary["nodes"][level] == 4 * counts["zoom"][level - 1] + refined
    assert counts["zoom"][2] == 0  # the finest level only segments
    if segmented_levels is not None:
        assert {k for k in range(3) if counts["break"][k]} == segmented_levels
    zoom_map = zarr.open_group(str(out / "slide.ome.zarr/labels/zoom_levels"), mode="r")["0"]
    decided = set(np.unique(zoom_map[:]).tolist()) - {255}
    broke = {k for k in range(3) if counts["break"][k]}
    # a level whose every break refined all its quadrants keeps no area of its own
    fully_refined = {k for k in range(2) if summary["refined"][k] == 4 * counts["break"][k] > 0}
    assert broke - fully_refined <= decided <= broke


def test_a_bad_slide_is_reported_and_the_batch_goes_on(trained_run, tmp_path):
    bad = tmp_path / "broken.svs"
    bad.write_text("not a slide")
    good = trained_run / "data" / "slides" / "synth_002.tiff"
    args = [
        "segment",
        str(bad),
        str(good),
        "--run",
        str(trained_run / "run"),
        "--out",
        str(tmp_path / "o"),
    ]
    result = CliRunner().invoke(main, [*args, "--mode", "ud", "--quiet"])
    assert result.exit_code == 2
    assert f"{bad}: unsupported" in result.output
    assert (tmp_path / "o" / "synth_002" / "summary.json").is_file()
    assert not (tmp_path / "o" / "broken").exists()


def test_unknown_mode_and_missing_policies_are_clear_errors(trained_run):
    result, _ = _segment(trained_run, "zoomy")
    assert result.exit_code == 2 and "unknown mode 'zoomy'" in result.output
    result, _ = _segment(trained_run, "razn", "--lambda", "0.5")
    assert result.exit_code == 2 and "no policies trained for this λ" in result.output
    assert "lam_0.01" in result.output


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--quiet"])
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("mode ") :]
    assert [line.split()[0] for line in table.splitlines()[2:5]] == ["razn", "ud", "cip"]
    for mode in ("razn", "ud", "cip"):
        assert (tmp_path / "demo" / "outputs" / mode / "synth_004" / "overlay.png").is_file()
