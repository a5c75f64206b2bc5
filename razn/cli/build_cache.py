"""``razn build-cache``: compute (or reuse) the reward cache of a run's training slides."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command("build-cache")
@click.option(
    "--run",
    "run_path",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory holding trained segmenters.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(run_path: Path, quiet: bool) -> None:
    """Precompute what policy training needs: every level's segmenter over the training
    slides, with its errors against the masks, stored in RUN/cache (zarr) and reused
    while slides, masks and weights are unchanged (train-policy does this itself).

    Example: razn build-cache --run runs/mine
    """
    from razn.heavy_imports import import_network_stack

    import_network_stack(policies=False)
    from razn.run_dir import RunDirectory
    from razn.train.reward_caches import build_reward_cache

    started = time.perf_counter()
    run = RunDirectory.open(run_path)
    paths = build_reward_cache(run, run.config, progress=not quiet)
    click.echo(
        f"{len(paths)} slide caches in {run.cache_dir} ({time.perf_counter() - started:.0f} s)"
    )
