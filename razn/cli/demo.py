"""``razn demo``: the whole story on a small built-in synthetic default."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="Folder for the dataset, the run and the outputs (reused when run again).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(out_dir: Path, quiet: bool) -> None:
    """See razn work in a few minutes: make a small synthetic dataset, train the segmenters
    and zoom policies briefly, segment a held-out slide with razn, everything coarse (ud)
    and everything at full resolution (cip), and print accuracy, seconds and patches.

    Example: razn demo --out demo
    """
    from razn.heavy_imports import import_network_stack

    import_network_stack(policies=True)
    from razn.demo import format_table, run_demo

    started = time.perf_counter()
    rows = run_demo(out_dir, progress=not quiet, say=click.echo)
    click.echo("")
    click.echo(format_table(rows))
    click.echo("")
    for row in rows:
        name = row.mode if row.lam is None else f"{row.mode} λ={row.lam:g}"
        click.echo(f"{name}: outputs in {row.output}, overlay {row.output / 'overlay.png'}")
    click.echo(f"demo finished in {time.perf_counter() - started:.0f} s")
