"""``razn inspect OUT/<slide name>``: the zoom decisions of one slide as PNGs and an HTML page."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("inspect")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--truth",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The slide's ground-truth mask: adds the oracle's rewards and the error view.",
)
@click.option(
    "--run",
    "run_path",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory of the segmenters (default: the one named in summary.json).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the figures (default: FOLDER/inspect).",
)
@click.option("--quiet", is_flag=True, help="No progress output while the reward cache is built.")
def command(
    folder: Path, truth: Path | None, run_path: Path | None, out_dir: Path | None, quiet: bool
) -> None:
    """Write the figures of FOLDER (one slide's outputs of razn segment): the zoom map, the
    policy's zoom probabilities, decision statistics, area decided per level, a zoomed
    region with its patch grid and, with --truth, prediction against ground truth; plus
    index.html holding them.

    Example: razn inspect out/slide_1 --truth masks/slide_1_mask.tiff
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    from razn.engine.progress import progress_mode
    from razn.inspection import SlideOutputs
    from razn.inspection.report import write_inspection

    outputs = SlideOutputs.open(folder)
    target = out_dir or folder / "inspect"
    for file in write_inspection(outputs, target, truth, run_path, progress_mode(quiet)):
        click.echo(f"{file.path}: {file.caption}")
    click.echo(f"open {target / 'index.html'}")
