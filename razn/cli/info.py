"""``razn info SLIDE...``: what a slide is, one slide at a time, failures reported and skipped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from razn.cli.options import MPP_HELP, MppValue
from razn.errors import RaznError


@click.command("info")
@click.argument("slides", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per slide, one per line.")
@click.option("--properties", is_flag=True, help="Include every raw metadata property.")
@click.option("--mpp", type=MppValue(), help=MPP_HELP)
def command(
    slides: tuple[Path, ...], as_json: bool, properties: bool, mpp: tuple[float, float] | None
) -> None:
    """Check that slides open and show what razn sees: vendor, pixel size (µm per pixel),
    objective power, tile size, associated images and every pyramid level.

    A slide that cannot be opened or read is reported on stderr (one line) and the
    others are still printed; the exit code is 2 if any failed.

    Example: razn info slides/*.svs
    """
    from razn.slide import open_slide
    from razn.slide.info import format_info, probe_read, slide_info

    failed = 0
    for index, path in enumerate(slides):
        try:
            with open_slide(path, mpp=mpp) as slide:
                info = slide_info(slide, with_properties=properties)
                probe_read(slide)
        except RaznError as exc:
            failed += 1
            click.echo(f"razn: error: {exc}", err=True)
            continue
        if as_json:
            click.echo(json.dumps(info, ensure_ascii=False))
        else:
            click.echo(("\n" if index else "") + format_info(info))
    if failed:
        sys.exit(2)
