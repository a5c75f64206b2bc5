"""Training f_0 … f_m: a smoke run, the run directory, resuming, the CLI, refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from razn.cli import main
from razn.config import from_mapping, read_yaml_mapping, to_dict
from razn.data.patches import validation_set
from razn.data.synth import SynthConfig, make_dataset
from razn.errors import CheckpointError, ConfigError, ManifestError
from razn.models import load_segmenter, predict_probs
from razn.run_config import RunConfig, load_run_config
from razn.run_dir import RunDirectory
from razn.train import load_slide_records, prepare_run, train_level, train_segmenters
from razn.train.losses import DiceCounter, segmentation_loss
from razn.train.segmentation import evaluate, learning_rate, new_state
from razn.train.state import restore_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STEPS, VAL_EVERY = 40, 10


def tiny_config(manifest: Path, **seg_train: object) -> RunConfig:
    """Three levels, 64-px patches, a tiny U-Net and a short, fast schedule."""
    mapping = {
        "levels": {"downsamples": [4, 2, 1], "patch_size": 64},
        "data": {"manifest": str(manifest)},
        "model": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
        "seg_train": {
            "steps": STEPS,
            "batch_size": 8,
            "lr": 0.003,
            "val_every": VAL_EVERY,
            "val_patches": 8,
            "num_workers": 0,
            "device": "cpu",
            **seg_train,
        },
    }
    return from_mapping(RunConfig, mapping)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 1024² synthetic slides: one train, one val, one test."""
    return make_dataset(tmp_path_factory.mktemp("synth"), 3, 1024, 1024, 0, SynthConfig())


@pytest.fixture(scope="module")
def trained(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDirectory:
    run = RunDirectory.create(tmp_path_factory.mktemp("runs") / "run", tiny_config(manifest))
    train_segmenters(run, progress=False)
    return run


def metric_rows(run: RunDirectory, level: int, split: str) -> list[dict[str, str]]:
    with run.metrics_path(level).open(newline="") as f:
        return [row for row in csv.DictReader(f) if row["split"] == split]


def test_training_lowers_the_loss_at_every_level(trained):
    for level in range(3):
        rows = metric_rows(trained, level, "train")
        assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
        first, last = float(rows[0]["loss"]), float(rows[-1]["loss"])  # means of 10 steps
        assert last < first, f"level {level}: train loss {first} -> {last}"
        header = ["step", "split", "loss", "mean_dice", "dice_background", "dice_tumour"]
        assert list(rows[0]) == header


def test_run_directory_layout_and_round_trip(trained):
    info = json.loads((trained.path / "run.json").read_text())
    assert info["format"] == "razn-run/1" and info["levels"] == [4.0, 2.0, 1.0]
    assert RunDirectory.open(trained.path).config == trained.config
    assert trained.policies_dir == trained.path / "policies"
    assert trained.cache_dir == trained.path / "cache"
    models = RunDirectory.open(trained.path).load_segmenters()
    records = load_slide_records(trained.config)
    for level, model in enumerate(models):
        _, extra = load_segmenter(trained.segmenter_path(level))
        assert extra["level"] == level and extra["steps"] == STEPS
        assert extra["downsample"] == trained.config.levels.downsamples[level]
        # The loaded weights score exactly what the trained ones scored when kept.
        val = validation_set(records.val, extra["downsample"], 64, 8, (0, level, 1))
        _, dice = evaluate(model, *val, 1.0, torch.device("cpu"))
        assert dice.tolist() == pytest.approx(list(extra["val_dice"].values()), abs=1e-12)
        best, _ = load_segmenter(trained.checkpoint_path(level, "best"))
        patches = val[0][:2]
        np.testing.assert_array_equal(predict_probs(model, patches), predict_probs(best, patches))


def test_finished_levels_are_skipped(trained):
    before = {p: p.stat().st_mtime_ns for p in trained.segmenters_dir.iterdir()}
    results = train_segmenters(RunDirectory.open(trained.path), progress=False)
    assert all(r.trained_earlier for r in results)
    assert all(r.complete and r.step == STEPS for r in results)
    assert {p: p.stat().st_mtime_ns for p in trained.segmenters_dir.iterdir()} == before


def test_an_interrupted_level_resumes_where_it_stopped(trained, manifest, tmp_path):
    run = RunDirectory.create(tmp_path / "run", tiny_config(manifest))
    partial = train_level(run, 0, stop_at=15, progress=False)  # inside an epoch
    assert not partial.complete and partial.step == 15
    assert not run.segmenter_path(0).exists()
    resumed = train_level(RunDirectory.open(run.path), 0, progress=False)
    assert resumed.complete and resumed.step == STEPS
    # Same batches, same learning rates: the weights equal the uninterrupted run's.
    ours, theirs = load_file(run.segmenter_path(0)), load_file(trained.segmenter_path(0))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert metric_rows(run, 0, "val") == metric_rows(trained, 0, "val")


def test_cli_trains_the_tiny_config(manifest, tmp_path):
    run_dir = tmp_path / "cli-run"
    args = ["train-seg", "--config", str(CONFIGS / "tiny.yaml"), "--run", str(run_dir)]
    args += ["--manifest", str(manifest), "--quiet", "--set", "seg_train.steps=4"]
    args += ["--set", "seg_train.val_every=2", "--set", "seg_train.val_patches=4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"run: {run_dir}" in result.output
    for level, d in enumerate((4, 2, 1)):
        assert f"level {level} (d={d}): val Dice background" in result.output
    assert len(RunDirectory.open(run_dir).load_segmenters()) == 3
    again = CliRunner().invoke(main, ["train-seg", "--run", str(run_dir), "--quiet"])
    assert again.exit_code == 0 and "trained earlier" in again.output


def test_cli_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["train-seg", "--run", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "a config is needed" in result.output


def test_tampered_or_missing_files_are_refused(trained, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in trained.path.rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(trained.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    weights = copy / "segmenters" / "level_1.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF  # one weight byte: still valid safetensors, but not what was trained
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        RunDirectory.open(copy).load_segmenters()
    (copy / "segmenters" / "level_2.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"level 2 is missing \(expected level_2"):
        RunDirectory.open(copy).load_segmenter(2)
    info = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**info, "format": "razn-run/0"}))
    with pytest.raises(CheckpointError, match="run format 'razn-run/0' is not 'razn-run/1'"):
        RunDirectory.open(copy)
    (copy / "run.json").unlink()
    with pytest.raises(CheckpointError, match=r"run\.json is missing"):
        RunDirectory.open(copy)


def test_unsafe_or_torn_checkpoints_are_refused(manifest, tmp_path):
    run = RunDirectory.create(tmp_path / "run", tiny_config(manifest))
    train_level(run, 0, stop_at=2, progress=False)
    last = run.checkpoint_path(0, "last")
    saved = last.read_bytes()
    train_level(run, 0, stop_at=3, progress=False)
    last.write_bytes(saved)  # weights of step 2 beside an optimizer state of step 3
    with pytest.raises(CheckpointError, match="holds step 2 but the optimizer checkpoint says 3"):
        restore_checkpoint(run, 0, new_state(run, 0, torch.device("cpu")))
    torch.save({"optimizer": Path("x")}, run.checkpoint_path(0, "optimizer"))  # not plain data
    with pytest.raises(CheckpointError, match="unreadable optimizer checkpoint"):
        restore_checkpoint(run, 0, new_state(run, 0, torch.device("cpu")))


def test_continuing_with_another_config_is_refused(trained, manifest):
    changed = tiny_config(manifest, lr=0.01)
    with pytest.raises(CheckpointError, match=r"differs at seg_train\.lr"):
        RunDirectory.open_or_create(trained.path, changed)
    faster = tiny_config(manifest, num_workers=2)  # runtime keys may change
    assert RunDirectory.open_or_create(trained.path, faster).config.seg_train.num_workers == 2
    with pytest.raises(CheckpointError, match="not an empty directory"):
        RunDirectory.create(trained.path, tiny_config(manifest))


def test_a_new_run_needs_a_manifest_and_is_not_created_without_one(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.manifest is not set"):
        prepare_run(CONFIGS / "tiny.yaml", tmp_path / "r", ("data.manifest=null",))
    with pytest.raises(ManifestError, match="manifest not found"):
        prepare_run(CONFIGS / "tiny.yaml", tmp_path / "r", ("data.manifest=nowhere.csv",))
    assert not (tmp_path / "r").exists()


def test_shipped_configs_load_and_default_yaml_lists_every_key():
    default = load_run_config(CONFIGS / "default.yaml")
    assert default.data.manifest == Path("data/synth/manifest.csv")
    assert to_dict(default) == {
        **to_dict(RunConfig()),
        "name": "default",
        "data": to_dict(default.data),
    }

    def keys(mapping: dict, prefix: str = "") -> set[str]:
        out = set()
        for key, value in mapping.items():
            out.add(prefix + key)
            if isinstance(value, dict):
                out |= keys(value, f"{prefix}{key}.")
        return out

    assert keys(read_yaml_mapping(CONFIGS / "default.yaml")) == keys(to_dict(RunConfig()))
    tiny = load_run_config(CONFIGS / "tiny.yaml")
    assert tiny.levels.downsamples == (4.0, 2.0, 1.0) and tiny.levels.patch_size == 64


def test_loss_and_dice_on_known_values():
    labels = torch.tensor([[[0, 1], [1, 255]]])
    perfect = torch.tensor([[[[9.0, -9.0], [-9.0, 0.0]], [[-9.0, 9.0], [9.0, 0.0]]]])
    assert float(segmentation_loss(perfect, labels)) < 0.01
    everything_ignored = torch.full((1, 2, 2), 255)
    assert float(segmentation_loss(perfect, everything_ignored)) == pytest.approx(0.0, abs=0.5)
    assert torch.isfinite(segmentation_loss(perfect, everything_ignored))
    counter = DiceCounter(3)
    counter.update(torch.tensor([[0, 1, 1, 0]]), torch.tensor([[0, 1, 0, 255]]))
    # class 0: |P∩T| = 1, |P| = 1, |T| = 2 -> 2/3; class 1: 1, 2, 1 -> 2/3; class 2 absent -> 1
    np.testing.assert_allclose(counter.dice(), [2 / 3, 2 / 3, 1.0])


def test_cosine_schedule_runs_from_lr_to_its_floor():
    config = tiny_config(Path("m.csv")).seg_train
    assert learning_rate(config, 0) == pytest.approx(config.lr)
    assert learning_rate(config, STEPS - 1) == pytest.approx(config.lr * config.min_lr_ratio)
    with pytest.raises(ConfigError, match="must not use the 'test' split"):
        tiny_config(Path("m.csv"), val_splits=["test"])
