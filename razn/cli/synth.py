"""``razn synth OUT_DIR``: write a synthetic benchmark dataset (slides, masks, manifest)."""

from __future__ import annotations

import re
from pathlib import Path

import click

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


class SizeType(click.ParamType):
    """``WIDTHxHEIGHT`` in level-0 pixels, both at least 1 (e.g. ``8192x6144``)."""

    name = "WIDTHxHEIGHT"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value  # type: ignore[return-value]
        match = _SIZE.match(str(value))
        if not match or min(int(match[1]), int(match[2])) < 1:
            self.fail(
                f"expected WIDTHxHEIGHT with positive integers, e.g. 8192x6144; got {value!r}",
                param,
                ctx,
            )
        return int(match[1]), int(match[2])


@click.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--slides",
    "n_slides",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Number of slides.",
)
@click.option(
    "--size",
    type=SizeType(),
    default="8192x8192",
    show_default=True,
    help="Level-0 size of each slide.",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Dataset seed."
)
@click.option(
    "--classes",
    type=click.Choice(["binary", "bach"]),
    default=None,
    help="binary: tumour / not tumour (the default); bach: the four classes of breast "
    "biopsies, 0 normal, 1 benign, 2 in situ, 3 invasive. Overrides the config's classes.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="SynthConfig YAML (e.g. configs/synth.yaml); defaults to the built-in values.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key (repeatable).",
)
def command(
    out_dir: Path,
    n_slides: int,
    size: tuple[int, int],
    seed: int,
    classes: str | None,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Make synthetic H&E-like slides with label masks and a manifest, to try razn
    without data of your own.

    Slides are pyramidal JPEG TIFFs that OpenSlide reads (Aperio flavour, mpp and
    objective power set); masks are uint8 pyramids (0 = not tumour, 1 = tumour; with
    --classes bach 0 normal, 1 benign, 2 in situ, 3 invasive). The same seed, size and
    config give the same files. Sizes are level-0 pixels. dataset.yaml lists the class
    names to put in a run config's data.class_names.

    Example: razn synth data/synth --slides 8 --size 8192x8192 --seed 0
    """
    from razn.config import load_config
    from razn.data.synth import SynthConfig, make_dataset

    extra = () if classes is None else (f"classes={classes}",)
    config = load_config(SynthConfig, config_path, (*overrides, *extra))
    manifest = make_dataset(out_dir, n_slides, size[0], size[1], seed, config, progress=True)
    folder = manifest.parent
    click.echo(f"wrote {n_slides} slide(s) of {size[0]}x{size[1]} px to {folder / 'slides'}")
    click.echo(f"masks in {folder / 'masks'}; manifest {manifest}; config {folder / 'config.yaml'}")
    click.echo(f"classes {', '.join(f'{v} {n}' for v, n in enumerate(config.class_names))}")
