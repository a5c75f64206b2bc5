"""``razn check --manifest CSV``: are these slides and masks ready to train on?"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("check")
@click.option(
    "--manifest",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Dataset manifest CSV (slide,mask,split; paths relative to the CSV).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run config whose data.class_names the masks must use (default: background, tumour).",
)
@click.option(
    "--needs",
    default="train,val",
    show_default=True,
    help="Splits that must have slides (comma-separated; add test to benchmark).",
)
def command(manifest: Path, config_path: Path | None, needs: str) -> None:
    """Check a dataset before a long training run: every slide opens, every mask fits its
    slide (size ratio) and holds only the config's class values (255 = ignore), and the
    splits training needs have slides. Prints one row per slide; exit code 2 if anything
    would stop training.

    Example: razn check --manifest data/manifest.csv --config configs/default.yaml
    """
    from razn.config import load_config
    from razn.data.check import check_dataset, format_check
    from razn.data.manifest import read_manifest
    from razn.run_config import RunConfig

    config = load_config(RunConfig, config_path)
    dataset = read_manifest(manifest, require_masks=False, check_files=False)
    needed = [name.strip() for name in needs.split(",") if name.strip()]
    check = check_dataset(dataset, config.data.class_names, needed)
    click.echo(format_check(check))
    for problem in check.problems:
        click.echo(f"razn: error: {problem}", err=True)
    if not check.ok:
        sys.exit(2)
