"""Getting a training run ready: its config, its directory and its slides."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from razn.config import load_config
from razn.data.check import check_dataset
from razn.data.manifest import Manifest, read_manifest
from razn.data.patches import SlideRecord, index_slides
from razn.errors import ConfigError, ManifestError
from razn.run_config import RunConfig
from razn.run_dir import RunDirectory


@dataclass(frozen=True)
class SlideRecords:
    """The indexed training and validation slides of a run (see :func:`index_slides`)."""

    train: tuple[SlideRecord, ...]
    val: tuple[SlideRecord, ...]


def prepare_run(
    config_path: str | Path | None,
    run_path: str | Path | None = None,
    overrides: tuple[str, ...] = (),
    manifest: str | Path | None = None,
) -> RunDirectory:
    """Open the run at ``run_path`` to continue it, or create it (default ``runs/NAME__seedS__TIME``).

    The config is ``config_path`` or, when continuing without one, the run's own
    ``config.yaml``; ``overrides`` (``key=value``) and ``manifest`` apply on top.
    ``data.manifest`` is made absolute (relative paths are from the working directory)
    so the run can be continued from anywhere.
    """
    existing = run_path is not None and (Path(run_path) / "run.json").exists()
    if config_path is None and not existing:
        raise ConfigError(
            "a config is needed to start a new run (e.g. --config configs/default.yaml)"
        )
    if config_path is None:
        config_path = Path(run_path) / "config.yaml"  # type: ignore[arg-type]
    if manifest is not None:
        overrides = (*overrides, f"data.manifest={Path(manifest).resolve()}")
    config = resolve_paths(load_config(RunConfig, config_path, overrides))
    # Before anything is written: a bad path or an unreadable slide must not leave a run behind.
    check_slides(check_manifest(config), config)
    if run_path is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_path = Path("runs") / f"{config.name}__seed{config.seed}__{stamp}"
    return RunDirectory.open_or_create(run_path, config)


def resolve_paths(config: RunConfig) -> RunConfig:
    """``config`` with ``data.manifest`` made absolute."""
    if config.data.manifest is None:
        return config
    data = dataclasses.replace(config.data, manifest=config.data.manifest.resolve())
    return dataclasses.replace(config, data=data)


def check_manifest(config: RunConfig) -> Manifest:
    """The run's manifest, read and checked (every slide and mask exists)."""
    if config.data.manifest is None:
        raise ConfigError(
            "data.manifest is not set; set it in the config or pass --manifest "
            "(make a synthetic dataset with `razn synth data/synth`)"
        )
    return read_manifest(config.data.manifest)


def check_slides(manifest: Manifest, config: RunConfig) -> None:
    """The check of ``razn check`` (:mod:`razn.data.check`) on every slide the segmenters
    train or validate on: a slide that cannot be opened, a mask of the wrong size or with
    class values outside the config's classes fails here (one line naming the file)
    rather than after the run directory exists."""
    splits = {*config.seg_train.train_splits, *config.seg_train.val_splits}
    check = check_dataset(manifest, config.data.class_names, needed_splits=(), splits=splits)
    problems = check.problems
    if problems:
        more = (
            f" (and {len(problems) - 1} more; razn check lists them)" if len(problems) > 1 else ""
        )
        raise ManifestError(problems[0] + more)


def load_slide_records(config: RunConfig) -> SlideRecords:
    """Read the manifest and index the slides of the training and validation splits."""
    manifest = check_manifest(config)
    train = config.seg_train
    records = {}
    for role, splits in (("train", train.train_splits), ("val", train.val_splits)):
        entries = [e for e in manifest if e.split in splits]
        if not entries:
            raise ManifestError(
                f"no slides in split(s) {', '.join(splits)}, needed for {role}ing the "
                "segmenters; assign some in the manifest or change seg_train."
                f"{role}_splits",
                manifest.path,
            )
        records[role] = tuple(index_slides(entries, config.tissue, config.data.num_classes))
    return SlideRecords(records["train"], records["val"])
