"""``razn train-seg``: train the per-level segmentation networks f_0 … f_m of a run."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


@click.command("train-seg")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run config YAML (e.g. configs/default.yaml); optional when continuing a run.",
)
@click.option(
    "--run",
    "run_path",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory; an existing run is continued. Default: runs/NAME__seedS__TIME.",
)
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Dataset manifest CSV; overrides data.manifest.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. seg_train.steps=50 (repeatable).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(
    config_path: Path | None,
    run_path: Path | None,
    manifest: Path | None,
    overrides: tuple[str, ...],
    quiet: bool,
) -> None:
    """Train f_0 … f_m level by level; continue RUN if it exists (finished levels are skipped).

    Writes RUN/config.yaml, RUN/run.json, RUN/segmenters/level_i.safetensors (best
    validation mean Dice) with level_i_metrics.csv, and checkpoints in RUN/checkpoints.
    """
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
