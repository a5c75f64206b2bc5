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
    from razn.train.policy import train_policies
    from razn.train.segmentation import train_segmenters
    from razn.train.setup import prepare_run

    started = time.perf_counter()
    run = prepare_run(config_path, run_path, overrides, manifest)
    click.echo(f"run: {run.path}")
    for result in train_segmenters(run, progress=not quiet):
        click.echo(f"f_{result.level}: val mean Dice {result.mean_dice:.3f}")
    for report in train_policies(run, progress=not quiet):
        click.echo(
            f"g_{report.level}: zoom rate {report.zoom_rate:.3f} (oracle {report.oracle_zoom_rate:.3f})"
        )
    click.echo(f"trained in {time.perf_counter() - started:.0f} s: {run.path}")
