"""``razn train-seg``: train the per-level segmentation networks f_0 … f_m of a run."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from razn.cli.options import training_run_options


@click.command("train-seg")
@training_run_options
def command(
    config_path: Path | None,
    run_path: Path | None,
    manifest: Path | None,
    overrides: tuple[str, ...],
    quiet: bool,
) -> None:
    """Train the segmentation network of every zoom level, coarsest first; an existing RUN
    is continued (finished levels are skipped).

    Writes RUN/config.yaml, RUN/run.json, RUN/segmenters/level_i.safetensors (best
    validation mean Dice) with level_i_metrics.csv, and checkpoints in RUN/checkpoints.

    Example: razn train-seg --config configs/default.yaml --manifest manifest.csv --run runs/mine
    """
    from razn.heavy_imports import import_network_stack

    import_network_stack(policies=False)
    from razn.train import prepare_run, train_segmenters

    started = time.perf_counter()
    run = prepare_run(config_path, run_path, overrides, manifest)
    click.echo(f"run: {run.path}")
    names = run.config.data.class_names
    try:
        results = train_segmenters(run, progress=not quiet)
    except KeyboardInterrupt:
        click.echo(f"interrupted; continue with: razn train-seg --run {run.path}", err=True)
        sys.exit(130)
    for result in results:
        dice = ", ".join(f"{n} {d:.3f}" for n, d in zip(names, result.val_dice, strict=True))
        note = " (trained earlier)" if result.trained_earlier else f" in {result.seconds:.0f} s"
        click.echo(
            f"level {result.level} (d={result.downsample:g}): val Dice {dice}; mean "
            f"{result.mean_dice:.3f} at step {result.best_step}/{result.step}{note}"
        )
    click.echo(f"segmenters in {run.segmenters_dir} ({time.perf_counter() - started:.0f} s)")
