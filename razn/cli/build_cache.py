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
    """Run f_0 … f_m once over every node of the policy slides and store errors and
    observations in RUN/cache (zarr); reused while slides, masks and weights are unchanged."""
    from razn.run_dir import RunDirectory
    from razn.train.policy import build_reward_cache

    started = time.perf_counter()
    run = RunDirectory.open(run_path)
    paths = build_reward_cache(run, run.config, progress=not quiet)
    click.echo(
        f"{len(paths)} slide caches in {run.cache_dir} ({time.perf_counter() - started:.0f} s)"
    )
