"""``razn evaluate --pred OUT --manifest M.csv``: Dice and IoU of segmented slides."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command("evaluate")
@click.option(
    "--pred",
    "pred_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder of razn segment (one sub-folder per slide).",
)
@click.option(
    "--manifest",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Manifest CSV whose masks are the ground truth.",
)
@click.option("--split", type=click.Choice(["train", "val", "test"]), help="Only this split.")
@click.option(
    "--downsample",
    type=click.FloatRange(min=1),
    help="Evaluation resolution in level-0 px per pixel (default: the outputs' own).",
)
@click.option(
    "--metrics",
    "metrics_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the JSON metrics (default: PRED/metrics.json).",
)
def command(
    pred_dir: Path,
    manifest: Path,
    split: str | None,
    downsample: float | None,
    metrics_path: Path | None,
) -> None:
    """Score segmented slides against their masks: Dice and IoU per class, over the
    foreground classes and over all classes, per slide and pooled, at one stated
    resolution (level-0 pixels per scored pixel). Prints a table and writes metrics.json;
    exit code 2 if any slide could not be scored.

    Example: razn evaluate --pred out --manifest manifest.csv --split test
    """
    from razn.evaluate_outputs import evaluate_outputs

    report = evaluate_outputs(pred_dir, manifest, split, downsample)
    click.echo(report.table())
    target = metrics_path or Path(pred_dir) / "metrics.json"
    target.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    click.echo(f"metrics written to {target}")
    for path in report.missing:
        click.echo(f"razn: warning: {path}: no segmentation under {pred_dir}", err=True)
    for item in report.failed:
        click.echo(f"razn: error: {item.error}", err=True)
    if report.failed:
        sys.exit(2)
