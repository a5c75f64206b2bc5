"""Bad input through the command line: every case gives one clear line naming the file and
the reason, exit code 2, and loses nothing else of the batch (issue 8).

Covered: the bad real fixtures, a missing path, a directory, an empty file, a truncated
slide and a slide whose tiles are corrupt in the middle, masks of the wrong size or with
class values outside the config, manifests with missing columns or files, configs with
unknown keys or values out of range, run directories of another version or with missing
files, and NaN or infinite network outputs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from click.testing import CliRunner
from conftest import TINY_OVERRIDES, downsample_pyramid, write_tiff_pyramid

from razn.cli import main
from razn.engine.batch import segment_slides
from razn.engine.spec import EngineSpec
from razn.models.backends import torch_predictor
from razn.outputs.batch_table import read_batch_table
from razn.slide import open_slide


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("razn: error:")]


def assert_one_clear_line(result, path: Path | str, reason: str) -> None:
    """Exit code 2, no traceback, and exactly one error line naming ``path`` and ``reason``."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = error_lines(result.output)
    assert len(lines) == 1, result.output
    assert str(path) in lines[0] and reason in lines[0], lines[0]


def slides(tiny_run: Path) -> list[Path]:
    return sorted((tiny_run / "data" / "slides").glob("synth_*.tiff"))


@pytest.fixture
def odd_files(tmp_path: Path, tiny_run: Path) -> dict[str, tuple[Path, str]]:
    """Bad slide files this project can make itself: name -> (path, expected reason)."""
    good = slides(tiny_run)[0]
    (tmp_path / "folder.svs").mkdir()
    (tmp_path / "empty.svs").touch()
    data = good.read_bytes()
    (tmp_path / "truncated.tiff").write_bytes(data[: len(data) // 3])
    return {
        "missing": (tmp_path / "missing.svs", "no such file"),
        "folder": (tmp_path / "folder.svs", "is a directory"),
        "empty": (tmp_path / "empty.svs", "file is empty"),
        "truncated": (tmp_path / "truncated.tiff", ""),
        "corrupt tiles": (corrupt_tiles(good, tmp_path / "corrupt.tiff"), "read failed"),
    }


def corrupt_tiles(source: Path, target: Path) -> Path:
    """``source`` as a 3-level JPEG pyramid whose second half of level-0 tiles is garbage:
    it opens, its thumbnail (from the coarse levels) and tissue are fine, and reading fails
    in the middle of the slide, inside the engine's reader threads."""
    with open_slide(source) as slide:
        level0 = slide.read_region((0, 0), 0, slide.dimensions)[..., :3]
    write_tiff_pyramid(target, downsample_pyramid(level0, 3), mpp=0.5, compression="jpeg")
    with tifffile.TiffFile(target) as tif:
        page = tif.pages[0]
        offsets, counts = page.dataoffsets, page.databytecounts
    data = bytearray(target.read_bytes())
    rng = np.random.default_rng(0)
    for offset, count in list(zip(offsets, counts, strict=True))[len(offsets) // 2 :]:
        data[offset : offset + count] = rng.integers(0, 256, count, dtype=np.uint8).tobytes()
    target.write_bytes(bytes(data))
    return target


# --- slides -------------------------------------------------------------------------------


def test_info_names_each_bad_file_once_and_still_prints_the_good_one(
    shared_fixtures, odd_files, tiny_run
):
    bad = sorted((shared_fixtures / "bad").iterdir()) + [p for p, _ in odd_files.values()]
    good = slides(tiny_run)[0]
    result = invoke("info", *bad, good, "--json")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = error_lines(result.output)
    # every bad file but the corrupt-tiles copy (metadata and thumbnail are fine) fails
    failing = [p for p in bad if p != odd_files["corrupt tiles"][0]]
    assert len(lines) == len(failing), result.output
    for path, line in zip(failing, lines, strict=True):
        assert line.startswith(f"razn: error: {path}: ")
    printed = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert str(good) in [p["path"] for p in printed]


def test_segment_fails_each_bad_slide_in_one_line_and_does_the_rest(odd_files, tiny_run, tmp_path):
    good = slides(tiny_run)[0]
    out = tmp_path / "out"
    bad = list(odd_files.values())
    args = [p for p, _ in bad]
    result = invoke(
        "segment", *args, good, "--run", tiny_run / "run", "--out", out, "--mode", "cip", "--quiet"
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    rows = read_batch_table(out / "batch.csv")
    assert [r["status"] for r in rows] == ["failed"] * len(bad) + ["done"]
    for (path, reason), row in zip(bad, rows, strict=False):
        assert row["reason"].startswith(f"{path}: ") and reason in row["reason"], row
        assert len(row["reason"].splitlines()) == 1
    # nothing of a failed slide is left behind, not even a .partial folder
    assert sorted(p.name for p in out.iterdir()) == ["batch.csv", good.stem]


# --- masks and manifests ----------------------------------------------------------------


def write_manifest(folder: Path, rows: list[str], header: str = "slide,mask,split") -> Path:
    path = folder / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def train_seg(tmp_path: Path, manifest: Path):
    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny\n", encoding="utf-8")
    overrides = [a for o in TINY_OVERRIDES for a in ("--set", o)]
    args = ["--config", config, "--run", tmp_path / "run", "--manifest", manifest, *overrides]
    return invoke("train-seg", *args, "--quiet")


def test_mask_of_the_wrong_size_is_named_with_both_sizes(tiny_run, tmp_path):
    slide = slides(tiny_run)[0]
    mask = tmp_path / "wrong_size.tiff"
    tifffile.imwrite(mask, np.zeros((100, 333), np.uint8))
    other = slides(tiny_run)[1]
    manifest = write_manifest(tmp_path, [f"{slide},{mask},train", f"{other},{mask},val"])
    result = train_seg(tmp_path, manifest)
    assert_one_clear_line(result, mask, "640")
    assert "333" in error_lines(result.output)[0]
    assert not (tmp_path / "run").exists()  # found before the run directory is made


def test_an_unreadable_training_slide_is_named_before_the_run_directory_is_made(tiny_run, tmp_path):
    empty = tmp_path / "empty.svs"
    empty.touch()
    mask = tmp_path / "mask.tiff"
    tifffile.imwrite(mask, np.zeros((576, 640), np.uint8))
    other = slides(tiny_run)[1]
    manifest = write_manifest(tmp_path, [f"{empty},{mask},train", f"{other},{mask},val"])
    result = train_seg(tmp_path, manifest)
    assert_one_clear_line(result, empty, "file is empty")
    assert not (tmp_path / "run").exists()


def test_mask_class_values_outside_the_config_are_named(tiny_run, tmp_path):
    slide = slides(tiny_run)[0]
    mask = tmp_path / "classes.tiff"
    values = np.zeros((576, 640), np.uint8)
    values[10:20, 10:20] = 7
    tifffile.imwrite(mask, values)
    other = slides(tiny_run)[1]
    manifest = write_manifest(tmp_path, [f"{slide},{mask},train", f"{other},{mask},val"])
    result = train_seg(tmp_path, manifest)
    assert_one_clear_line(result, mask, "outside 0..1")
    assert not list((tmp_path / "run" / "segmenters").glob("*.safetensors"))


@pytest.mark.parametrize(
    ("header", "rows", "reason"),
    [
        ("slide,split", ["a.svs,test"], "mask"),
        ("slide,mask,split", ["missing.svs,missing.tiff,test"], "missing.svs"),
        ("slide,mask,split", ["{slide},,tset"], "test"),
    ],
    ids=["missing column", "missing file", "misspelt split"],
)
def test_bad_manifests_are_one_line(tiny_run, tmp_path, header, rows, reason):
    slide = slides(tiny_run)[0]
    manifest = write_manifest(tmp_path, [r.format(slide=slide) for r in rows], header)
    result = invoke("evaluate", "--pred", tmp_path / "out", "--manifest", manifest)
    assert_one_clear_line(result, manifest, reason)


def test_segment_manifest_with_a_missing_slide_fails_that_slide_only(tiny_run, tmp_path):
    good = slides(tiny_run)[0]
    manifest = write_manifest(tmp_path, [f"{good},,test", "gone.svs,,test"])
    out = tmp_path / "out"
    result = invoke(
        "segment", "--manifest", manifest, "--run", tiny_run / "run", "--out", out, "--mode", "ud"
    )
    assert result.exit_code == 2, result.output
    rows = read_batch_table(out / "batch.csv")
    assert [r["status"] for r in rows] == ["done", "failed"]
    assert "gone.svs: no such file" in rows[1]["reason"]


# --- configs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "overrides", "reason"),
    [
        ("levels:\n  patch_sise: 64\n", (), "did you mean 'patch_size'"),
        ("modle:\n  arch: unet\n", (), "did you mean 'model'"),
        ("name: bad\n", ("seg_train.steps=-3",), "seg_train.steps"),
        ("name: bad\n", ("levels.downsamples=[8, 4, 1]",), "one integer rate"),
        ("levels: [1, 2\n", (), "YAML"),
        ("!!python/object/apply:os.system ['echo pwned']\n", (), "YAML"),
    ],
    ids=["unknown key", "unknown section", "out of range", "bad levels", "bad YAML", "python tag"],
)
def test_bad_configs_are_refused_before_any_work(tiny_run, tmp_path, text, overrides, reason):
    config = tmp_path / "bad.yaml"
    config.write_text(text, encoding="utf-8")
    manifest = tiny_run / "data" / "manifest.csv"
    args = ["train-seg", "--config", config, "--run", tmp_path / "run", "--manifest", manifest]
    for override in overrides:
        args += ["--set", override]
    result = invoke(*args, "--quiet")
    assert_one_clear_line(result, "", reason)
    line = error_lines(result.output)[0]
    if overrides:  # the value came from the command line: named, and the file is not blamed
        assert f"--set {overrides[0]}" in line and str(config) not in line
    else:
        assert str(config) in line
    assert not (tmp_path / "run" / "segmenters").exists() or not any(
        (tmp_path / "run" / "segmenters").iterdir()
    )


# --- run directories --------------------------------------------------------------------


def copy_run(tiny_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run, ignore=shutil.ignore_patterns("cache"))
    return run


def break_version(run: Path) -> Path:
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    info["format"] = "razn-run/99"
    (run / "run.json").write_text(json.dumps(info), encoding="utf-8")
    return run / "run.json"


def drop_segmenter(run: Path) -> Path:
    path = run / "segmenters" / "level_1.safetensors"
    path.unlink()
    return path


def drop_run_json(run: Path) -> Path:
    (run / "run.json").unlink()
    return run


def drop_policies(run: Path) -> Path:
    shutil.rmtree(run / "policies")
    return run


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (break_version, "razn-run/99"),
        (drop_segmenter, "level_1"),
        (drop_run_json, "run.json"),
        (drop_policies, "polic"),
    ],
    ids=["incompatible version", "missing segmenter", "missing run.json", "missing policies"],
)
def test_bad_run_directories_fail_before_any_slide(tiny_run, tmp_path, damage, reason):
    run = copy_run(tiny_run, tmp_path)
    path = damage(run)
    out = tmp_path / "out"
    result = invoke("segment", slides(tiny_run)[0], "--run", run, "--out", out, "--quiet")
    assert_one_clear_line(result, path, reason)
    assert not out.exists() or not any(p.is_dir() for p in out.iterdir())


# --- NaN and infinite network outputs -----------------------------------------------------


class Poisoned(torch.nn.Module):
    """Wraps a segmenter and replaces its logits by ``value`` on some patches."""

    def __init__(self, inner: torch.nn.Module, value: float):
        super().__init__()
        self.inner, self.value = inner, value
        self.num_classes = inner.num_classes

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.inner(batch)
        logits[0, :, 3, 5] = self.value
        return logits


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_or_infinite_outputs_fail_the_slide_and_write_no_labels(tiny_run, tmp_path, value):
    engine = EngineSpec(tiny_run / "run", mode="cip", device="cpu").build()
    level = engine.geometry.finest_level
    poisoned_model = Poisoned(engine.segmenters[level], value)
    engine.predictors[level] = torch_predictor(poisoned_model, engine.settings.batch_size)
    poisoned = slides(tiny_run)[1]
    out = tmp_path / "out"
    outcomes = segment_slides([poisoned], engine, out)
    assert [o.status for o in outcomes] == ["failed"]
    reason = outcomes[0].reason
    assert reason.startswith(f"{poisoned}: segmenter f_{level} gave NaN or infinite outputs")
    assert len(reason.splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["batch.csv"]  # no labels, no .partial
    assert read_batch_table(out / "batch.csv")[0]["status"] == "failed"
