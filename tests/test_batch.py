"""``razn segment`` batches: batch.csv, --resume, distinct names, inputs, NGFF 0.5, evaluation."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from razn.cli import main
from razn.outputs import layout
from razn.outputs.batch_table import read_batch_table
from razn.outputs.compare import THREAD_TOLERANCE, compare_outputs
from razn.slide import open_slide


def segment(tiny_run: Path, out: Path, *arguments: str, mode: str = "razn"):
    args = ["segment", *arguments, "--run", str(tiny_run / "run"), "--out", str(out)]
    return CliRunner().invoke(main, [*args, "--mode", mode, "--quiet"])


def slides(tiny_run: Path) -> list[Path]:
    return sorted((tiny_run / "data" / "slides").glob("synth_*.tiff"))


def summary(folder: Path) -> dict:
    return json.loads((folder / layout.SUMMARY).read_text(encoding="utf-8"))


def assert_same_outputs(a: Path, b: Path, probability_tolerance: float = THREAD_TOLERANCE) -> None:
    """Two output folders hold exactly the same labels, zoom map, actions and regions, and
    P(zoom) within ``probability_tolerance`` (default: what another thread count may move)."""
    assert compare_outputs(a, b, probability_tolerance).differences == []
    assert summary(a)["patches"] == summary(b)["patches"]


def test_batch_csv_records_every_slide(tiny_run, tmp_path):
    bad = tmp_path / "broken.svs"
    bad.write_text("not a slide")
    good = slides(tiny_run)[:2]
    result = segment(tiny_run, tmp_path / "out", str(good[0]), str(bad), str(good[1]))
    assert result.exit_code == 2
    rows = read_batch_table(tmp_path / "out" / "batch.csv")
    assert [(r["slide"], r["output"], r["status"]) for r in rows] == [
        (str(good[0]), "synth_000", "done"),
        (str(bad), "", "failed"),
        (str(good[1]), "synth_001", "done"),
    ]
    assert rows[1]["reason"].startswith(f"{bad}: unsupported")
    assert f"razn: error: {bad}: unsupported" in result.output
    for row in (rows[0], rows[2]):
        recorded = summary(tmp_path / "out" / row["output"])
        assert row["patches"] == "/".join(map(str, recorded["patches"]))
        assert float(row["seconds"]) == pytest.approx(recorded["seconds"], abs=1e-3)
        assert row["reason"] == ""


def test_interrupted_batch_resumed_equals_uninterrupted(tiny_run, tmp_path):
    first, second = slides(tiny_run)[:2]
    assert segment(tiny_run, tmp_path / "whole", str(first), str(second)).exit_code == 0
    resumed = tmp_path / "resumed"
    assert segment(tiny_run, resumed, str(first)).exit_code == 0  # then "interrupted":
    partial = resumed / ".synth_001.partial"
    (partial / layout.LABELS).mkdir(parents=True)
    result = segment(tiny_run, resumed, str(first), str(second), "--resume")
    assert result.exit_code == 0, result.output
    assert "synth_000.tiff: skipped, already complete" in result.output
    assert "1 done, 1 skipped, 0 failed of 2 slides" in result.output
    rows = read_batch_table(resumed / "batch.csv")
    assert [(r["output"], r["status"], r["reason"]) for r in rows] == [
        ("synth_000", "skipped", "already complete"),
        ("synth_001", "done", ""),
    ]
    assert rows[0]["patches"] == "/".join(map(str, summary(resumed / "synth_000")["patches"]))
    assert not partial.exists()
    assert sorted(p.name for p in resumed.iterdir()) == ["batch.csv", "synth_000", "synth_001"]
    for name in ("synth_000", "synth_001"):
        assert_same_outputs(tmp_path / "whole" / name, resumed / name)


def test_resume_redoes_slides_made_with_other_settings(tiny_run, tmp_path):
    slide = str(slides(tiny_run)[0])
    assert segment(tiny_run, tmp_path, slide, mode="ud").exit_code == 0
    assert segment(tiny_run, tmp_path, slide, "--resume", mode="cip").exit_code == 0
    assert read_batch_table(tmp_path / "batch.csv")[0]["status"] == "done"
    assert summary(tmp_path / "synth_000")["mode"] == "cip"
    (tmp_path / "synth_000" / layout.GEOJSON).unlink()  # an incomplete folder is redone too
    assert segment(tiny_run, tmp_path, slide, "--resume", mode="cip").exit_code == 0
    assert read_batch_table(tmp_path / "batch.csv")[0]["status"] == "done"
    assert segment(tiny_run, tmp_path, slide, "--resume", mode="cip").exit_code == 0
    assert read_batch_table(tmp_path / "batch.csv")[0]["status"] == "skipped"


def test_overlap_tiles_are_a_setting_of_segment(tiny_run, tmp_path):
    slide = str(slides(tiny_run)[0])
    assert segment(tiny_run, tmp_path / "plain", slide, mode="cip").exit_code == 0
    assert segment(tiny_run, tmp_path / "o", slide, "--overlap", "8", mode="cip").exit_code == 0
    assert summary(tmp_path / "o" / "synth_000")["overlap"] == 8
    assert summary(tmp_path / "plain" / "synth_000")["overlap"] == 0
    # the same patches with more context: other labels
    plain = zarr.open_array(str(tmp_path / "plain" / "synth_000" / layout.LABELS), mode="r")
    overlap = zarr.open_array(str(tmp_path / "o" / "synth_000" / layout.LABELS), mode="r")
    assert (
        summary(tmp_path / "o" / "synth_000")["patches"]
        == summary(tmp_path / "plain" / "synth_000")["patches"]
    )
    assert (np.asarray(plain) != np.asarray(overlap)).any()
    # --resume redoes a slide made with another margin
    again = segment(tiny_run, tmp_path / "o", slide, "--overlap", "4", "--resume", mode="cip")
    assert again.exit_code == 0 and summary(tmp_path / "o" / "synth_000")["overlap"] == 4
    assert read_batch_table(tmp_path / "o" / "batch.csv")[0]["status"] == "done"
    # a margin the network cannot take (depth-3 encoder: inputs a multiple of 8)
    bad = segment(tiny_run, tmp_path / "bad", slide, "--overlap", "3", mode="cip")
    assert (
        bad.exit_code != 0
        and "64 + 2 × 3 = 70 is not; use a non-negative multiple of 4" in bad.output
    )


def test_same_names_in_different_folders_and_unusual_names(tiny_run, tmp_path):
    source = slides(tiny_run)[0]
    a, b = tmp_path / "a" / "x.tiff", tmp_path / "b" / "x.tiff"
    odd = tmp_path / "c" / "my slide [1] (é).tiff"
    for target in (a, b, odd):
        target.parent.mkdir(exist_ok=True)
        shutil.copy(source, target)
    result = segment(tiny_run, tmp_path / "out", str(a), str(b), str(odd), mode="ud")
    assert result.exit_code == 0, result.output

    def digest(path: Path) -> str:
        return hashlib.sha256(path.resolve().as_posix().encode()).hexdigest()[:8]

    names = [f"x-{digest(a)}", f"x-{digest(b)}", "my slide [1] (é)"]
    assert [r["output"] for r in read_batch_table(tmp_path / "out" / "batch.csv")] == names
    for name, path in zip(names, (a, b, odd), strict=True):
        assert summary(tmp_path / "out" / name)["slide"] == str(path.resolve())


def test_random_mode_restarts_its_generator_on_every_slide(tiny_run, tmp_path):
    source = slides(tiny_run)[2]
    copies = [tmp_path / folder / "x.tiff" for folder in ("a", "b")]
    for copy in copies:
        copy.parent.mkdir()
        shutil.copy(source, copy)
    args = [str(c) for c in copies] + ["--zoom-probability", "0.5", "--seed", "3"]
    assert segment(tiny_run, tmp_path / "out", *args, mode="random").exit_code == 0
    a, b = sorted((tmp_path / "out").glob("x-*"))
    decisions = (a / layout.DECISIONS).read_text(encoding="utf-8")
    assert decisions == (b / layout.DECISIONS).read_text(encoding="utf-8")
    actions = [line.split(",")[5] for line in decisions.splitlines()[1:]]
    assert "zoom" in actions and "break" in actions  # the decisions are random, yet equal
    assert summary(a)["seed"] == 3 and summary(a)["zoom_probability"] == 0.5


def test_globs_and_manifest_inputs(tiny_run, tmp_path):
    pattern = str(tiny_run / "data" / "slides" / "synth_00[01].tiff")
    result = segment(tiny_run, tmp_path / "glob", pattern, str(slides(tiny_run)[0]), mode="ud")
    assert result.exit_code == 0, result.output
    rows = read_batch_table(tmp_path / "glob" / "batch.csv")
    assert [r["output"] for r in rows] == ["synth_000", "synth_001"]  # listed twice, done once
    manifest = tiny_run / "data" / "manifest.csv"
    result = segment(tiny_run, tmp_path / "m", "--manifest", str(manifest), "--split", "test")
    assert result.exit_code == 0, result.output
    assert [r["output"] for r in read_batch_table(tmp_path / "m" / "batch.csv")] == ["synth_002"]
    result = segment(tiny_run, tmp_path / "none", str(tmp_path / "*.svs"))
    assert result.exit_code == 2 and "no file matches the pattern" in result.output


def test_evaluate_finds_outputs_by_recorded_slide(tiny_run, tmp_path):
    manifest = tiny_run / "data" / "manifest.csv"
    assert segment(tiny_run, tmp_path / "o", "--manifest", str(manifest), mode="ud").exit_code == 0
    renamed = tmp_path / "o" / "renamed"
    (tmp_path / "o" / "synth_002").rename(renamed)  # found through its summary's slide path
    args = ["evaluate", "--pred", str(tmp_path / "o"), "--manifest", str(manifest)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text(encoding="utf-8"))
    assert sorted(s["name"] for s in metrics["slides"]) == ["renamed", "synth_000", "synth_001"]


def test_ngff_05_option(tiny_run, tmp_path):
    result = segment(tiny_run, tmp_path, str(slides(tiny_run)[2]), "--ngff", "0.5", mode="cip")
    assert result.exit_code == 0, result.output
    group = zarr.open_group(str(tmp_path / "synth_002" / layout.LABELS_OME), mode="r")
    assert group.metadata.zarr_format == 3 and group.attrs["ome"]["version"] == "0.5"
    assert group["0"].shape == (576, 640)
    assert summary(tmp_path / "synth_002")["ngff_version"] == "0.5"


def test_mpp_given_recorded_and_the_fallback_said(tiny_run, tmp_path):
    from conftest import write_tiff_pyramid

    source = slides(tiny_run)[0]
    with open_slide(source) as slide:  # the same pixels, in a file that records no mpp
        image = slide.read_region((0, 0), 0, slide.dimensions)
    bare = write_tiff_pyramid(
        tmp_path / "bare.tiff", [image, np.ascontiguousarray(image[::2, ::2])]
    )
    result = segment(tiny_run, tmp_path / "out", str(bare), mode="cip")
    assert result.exit_code == 0, result.output
    assert "bare.tiff: the file records no pixel size; tissue detection assumes 0.5 µm/px" in (
        result.output
    )
    assert summary(tmp_path / "out" / "bare")["mpp_source"] == "fallback"
    given = segment(tiny_run, tmp_path / "given", str(bare), "--mpp", "0.5,0.6", mode="cip")
    assert given.exit_code == 0, given.output
    recorded = summary(tmp_path / "given" / "bare")
    assert recorded["mpp"] == [0.5, 0.6] and recorded["mpp_source"] == "override"
    assert recorded["mpp_given"] == [0.5, 0.6] and "records no pixel size" not in given.output
    again = segment(
        tiny_run, tmp_path / "given", str(bare), "--mpp", "0.25", "--resume", mode="cip"
    )
    assert "0 skipped" in again.output  # another --mpp is another setting: redone
    info = CliRunner().invoke(main, ["info", str(bare), "--mpp", "0.25"])
    assert "0.25 x 0.25 µm/px (override)" in info.output
    bad = segment(tiny_run, tmp_path / "bad", str(bare), "--mpp", "-1", mode="cip")
    assert bad.exit_code == 2 and "give one or two positive µm values" in bad.output


def test_tissue_detection_can_be_set_at_segment_time_and_is_a_setting(tiny_run, tmp_path):
    slide = str(slides(tiny_run)[0])
    default = segment(tiny_run, tmp_path / "out", slide, mode="cip")
    assert default.exit_code == 0, default.output
    recorded = summary(tmp_path / "out" / "synth_000")
    assert recorded["tissue"] == {"method": "saturation", "threshold": None}
    args = ["--tissue-method", "darkness", "--tissue-threshold", "250", "--resume"]
    other = segment(tiny_run, tmp_path / "out", slide, *args, mode="cip")
    assert other.exit_code == 0 and "0 skipped" in other.output  # another setting: redone
    changed = summary(tmp_path / "out" / "synth_000")
    assert changed["tissue"] == {"method": "darkness", "threshold": 250.0}
    # darkness above 250 of 255: almost nothing is tissue, so almost nothing is segmented
    assert changed["tissue_fraction"] < recorded["tissue_fraction"]
    again = segment(tiny_run, tmp_path / "out", slide, *args, mode="cip")
    assert "1 skipped" in again.output


def test_regions_smaller_than_the_minimum_area_are_left_out_of_the_geojson(tiny_run, tmp_path):
    slide = str(slides(tiny_run)[0])
    counts = {}
    for area in (0, 50, 5000):
        out = tmp_path / f"area{area}"
        result = segment(tiny_run, out, slide, "--min-region-area", str(area), mode="cip")
        assert result.exit_code == 0, result.output
        regions = json.loads((out / "synth_000" / "regions.geojson").read_text())
        counts[area] = len(regions["features"])
        recorded = summary(out / "synth_000")
        assert recorded["min_region_area"] == area and recorded["min_region_area_unit"] == "µm²"
        labels = zarr.open_array(str(out / "synth_000" / "labels.zarr"), mode="r")[:]
        counts[f"labels{area}"] = int(labels.sum())
    assert counts[0] >= counts[50] >= counts[5000] and counts[0] > counts[5000]
    assert counts["labels0"] == counts["labels50"] == counts["labels5000"]  # labels unchanged


def test_batch_csv_keeps_each_slide_as_it_was_given(tiny_run, tmp_path, monkeypatch):
    dashed = tmp_path / "-x.svs"
    shutil.copy(slides(tiny_run)[0], dashed)
    monkeypatch.chdir(tmp_path)
    result = segment(tiny_run, tmp_path / "out", "./-x.svs", mode="ud")
    assert result.exit_code == 0, result.output
    rows = read_batch_table(tmp_path / "out" / "batch.csv")
    assert [(r["slide"], r["output"], r["status"]) for r in rows] == [("./-x.svs", "-x", "done")]


def test_a_dicom_series_named_by_a_glob_is_segmented_once(shared_fixtures, tiny_run, tmp_path):
    from razn.engine.inputs import expand_inputs

    folder = shared_fixtures / "series" / "CMU-1-Small-Region-dicom"
    pattern = str(folder / "*.dcm")
    assert len(expand_inputs([pattern])) == 1
    result = segment(tiny_run, tmp_path / "out", pattern, mode="ud")
    assert result.exit_code == 0, result.output
    rows = read_batch_table(tmp_path / "out" / "batch.csv")
    assert len(rows) == 1 and rows[0]["output"] == "CMU-1-Small-Region-dicom"
    assert rows[0]["status"] == "done"
