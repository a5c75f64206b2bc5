"""``razn check``: a dataset is checked slide by slide before anyone trains on it."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from razn.cli import main
from razn.data.check import check_dataset
from razn.data.manifest import read_manifest, write_manifest
from razn.data.synth import SynthConfig, make_dataset
from razn.errors import ManifestError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("check")
    config = SynthConfig(val_fraction=0.34, test_fraction=0.34)
    manifest = read_manifest(make_dataset(folder / "data", 3, 256, 256, seed=3, config=config))
    return folder, manifest


def _with_bad_masks(folder, manifest):
    """The train slide's mask with class value 7, the val slide's of the wrong size."""
    train, val, test = (manifest.split(s)[0] for s in ("train", "val", "test"))
    seven = folder / "seven.tiff"
    tifffile.imwrite(seven, np.full((256, 256), 7, np.uint8))
    small = folder / "small.tiff"
    tifffile.imwrite(small, np.zeros((100, 40), np.uint8))
    entries = [
        type(train)(train.slide, seven, "train"),
        type(val)(val.slide, small, "val"),
        test,
    ]
    return write_manifest(folder / "bad.csv", entries)


def test_a_good_dataset_gives_a_row_per_slide_and_exit_0(dataset):
    _, manifest = dataset
    result = CliRunner().invoke(main, ["check", "--manifest", str(manifest.path)])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("synth_")]
    assert len(rows) == 3 and all(" 256×256 " in row and row.endswith("ok") for row in rows)
    assert "3 of 3 slides usable" in result.output


def test_bad_masks_and_missing_splits_are_named(dataset):
    folder, manifest = dataset
    bad = _with_bad_masks(folder, manifest)
    check = check_dataset(read_manifest(bad), ("background", "tumour"), ("train", "val", "test"))
    assert [e.ok for e in check.entries] == [False, False, True]
    assert check.entries[0].classes == (7,)
    assert "seven.tiff: mask has class values 7 outside 0..1 (background, tumour" in (
        check.entries[0].problem
    )
    assert "small.tiff" in check.entries[1].problem
    result = CliRunner().invoke(main, ["check", "--manifest", str(bad), "--needs", "train,val"])
    assert result.exit_code == 2 and "1 of 3 slides usable" in result.output
    only_test = write_manifest(folder / "test_only.csv", list(manifest.split("test")))
    result = CliRunner().invoke(main, ["check", "--manifest", str(only_test)])
    assert result.exit_code == 2 and "missing splits: train, val" in result.output


def test_train_runs_the_same_check_before_making_the_run(dataset, tmp_path):
    from razn.config import load_config
    from razn.run_config import RunConfig
    from razn.train.setup import check_slides

    folder, manifest = dataset
    bad = read_manifest(_with_bad_masks(folder, manifest))
    with pytest.raises(
        ManifestError,
        match=r"seven\.tiff: mask has class values 7 .*\(and 1 more; razn check lists them\)",
    ):
        check_slides(bad, load_config(RunConfig, None))
    config = tmp_path / "c.yaml"
    config.write_text("name: c\n", encoding="utf-8")
    args = [
        "train",
        "--config",
        str(config),
        "--manifest",
        str(bad.path),
        "--run",
        str(tmp_path / "run"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "seven.tiff" in result.output
    assert not (tmp_path / "run").exists()
