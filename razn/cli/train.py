"""``razn train``: ``train-seg`` then ``train-policy`` on one run."""

from __future__ import annotations

import time
from pathlib import Path

import click

from razn.cli.options import training_run_options


@click.command("train")
@training_run_options
def command(
    config_path: Path | None,
    run_path: Path | None,
    manifest: Path | None,
    overrides: tuple[str, ...],
    quiet: bool,
) -> None:
    """Train everything a run needs: one segmentation network per zoom level, then the
    zoom policies that decide where to look closer, into one run directory.

    Example: razn train --config configs/default.yaml --manifest manifest.csv --run runs/mine
    """
    from razn.heavy_imports import import_network_stack

    import_network_stack(policies=True)
    from razn.train.policy import train_policies
    from razn.train.segmentation import iter_train_segmenters
    from razn.train.setup import prepare_run

    started = time.perf_counter()

    def say(message: str) -> None:  # each stage stamped: wall clock and time since start
        elapsed = time.perf_counter() - started
        click.echo(f"[{time.strftime('%H:%M:%S')} +{elapsed:5.0f} s] {message}")

    say("checking the dataset")
    run = prepare_run(config_path, run_path, overrides, manifest)
    names = run.config.data.class_names
    say(f"run: {run.path}; training the segmenters of {run.num_levels} levels")
    for result in iter_train_segmenters(run, progress=not quiet):
        say(
            f"segmenter of level {result.level} (downsample {result.downsample:g}): "
            f"validation Dice {result.dice_text(names)}"
        )
    say(f"training the zoom policies (λ = {run.config.reward.lam:g}; reward caches first)")
    for report in train_policies(run, progress=not quiet):
        say(report.describe())
    say(f"trained: {run.path}")
