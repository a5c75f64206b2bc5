"""``razn rasterize``: polygon annotations → pyramidal label-mask TIFF."""

from __future__ import annotations

import re
from pathlib import Path

import click

from razn.errors import AnnotationError, SlideError

_DIMS = re.compile(r"^\s*(\d+)\s*[x×X]\s*(\d+)\s*$")


def slide_dimensions(value: str) -> tuple[int, int]:
    """``(W, H)`` from a ``WxH`` string, or from the level 0 of the slide at ``value``."""
    match = _DIMS.match(value)
    if match:
        w, h = int(match[1]), int(match[2])
        if w > 0 and h > 0:
            return w, h
        raise SlideError(f"slide dimensions {value!r} must be positive, e.g. 100000x80000")
    from razn.slide import open_slide

    with open_slide(value) as slide:  # a SlideError names the file and the reason
        return slide.dimensions


def parse_labels(items: tuple[str, ...]) -> dict[str, int]:
    """``{"NAME": VALUE}`` from ``NAME=VALUE`` strings (VALUE an integer 0..255)."""
    labels: dict[str, int] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep or not name or not value.strip().isdigit() or int(value) > 255:
            raise AnnotationError(f"--label {item!r}: expected NAME=VALUE with VALUE in 0..255")
        labels[name] = int(value)
    return labels


@click.command("rasterize")
@click.argument("annotation", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--slide",
    required=True,
    metavar="SLIDE_OR_WxH",
    help="The slide (its level-0 size is read with OpenSlide) or that size, e.g. 100000x80000.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Output label-mask TIFF (tiled, zlib, pyramidal uint8).",
)
@click.option(
    "--downsample",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Level-0 pixels per mask pixel.",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="NAME=VALUE",
    help="Class name → label value (repeatable); adds to or overrides the defaults.",
)
@click.option(
    "--skip-unknown", is_flag=True, help="Skip polygons whose class has no label, not fail."
)
@click.option(
    "--no-default-labels", is_flag=True, help="Use only the --label entries as the label map."
)
def command(
    annotation: Path,
    slide: str,
    out: Path,
    downsample: float,
    labels: tuple[str, ...],
    skip_unknown: bool,
    no_default_labels: bool,
) -> None:
    """Turn drawn annotations (QuPath GeoJSON or ASAP XML) into a label mask for training.

    A mask pixel takes the label of the polygon containing its centre. Larger
    polygons are drawn first, so one drawn inside another wins (a lesion inside a
    Normal region, a CAMELYON16 "_2" exclusion inside tumour); holes stay unfilled.
    Default labels: Tumor/tumor/Tumour/_0/_1 = 1, _2 = 0. Several classes: one
    --label per class name (e.g. BACH: --label Benign=1 --label "In situ=2"
    --label Invasive=3); a class without a label is an error naming it.

    Example: razn rasterize slide_1.geojson --slide slide_1.svs --out slide_1_mask.tif --downsample 4
    """
    from razn.data.annotations import DEFAULT_LABEL_MAP, rasterize_to_tiff, read_annotations

    label_map = {} if no_default_labels else dict(DEFAULT_LABEL_MAP)
    label_map.update(parse_labels(labels))
    dims = slide_dimensions(slide)
    annotations = read_annotations(annotation)
    rasterize_to_tiff(
        annotations, dims, out, downsample, label_map, skip_unknown=skip_unknown, progress=True
    )
    click.echo(
        f"wrote {out}: {len(annotations)} polygon(s), slide {dims[0]}×{dims[1]}, "
        f"downsample {downsample:g}"
    )
