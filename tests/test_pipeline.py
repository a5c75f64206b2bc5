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


@pytest.mark.parametrize("mode", ["razn", "ud", "cip", "fixed-1"])
def test_segment_writes_the_documented_layout(trained_run, mode):
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
    labels = zarr.open_array(str(out / "labels.zarr"), mode="r")
    assert labels.shape == (576, 640) and labels.dtype == np.uint8
    if mode == "cip":
        assert summary["patches"][:2] == [0, 0] and summary["patches"][2] > 0
    if mode == "ud":
        assert summary["patches"][1:] == [0, 0]


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
