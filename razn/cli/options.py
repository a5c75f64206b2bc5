"""Options shared by the training commands (``train-seg``, ``train``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def training_run_options(function: F) -> F:
    """``--config``, ``--run``, ``--manifest``, ``--set`` and ``--quiet``, as ``train-seg`` takes them."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Run config YAML (e.g. configs/default.yaml); optional when continuing a run.",
        ),
        click.option(
            "--run",
            "run_path",
            type=click.Path(file_okay=False, path_type=Path),
            help="Run directory; an existing run is continued. Default: runs/NAME__seedS__TIME.",
        ),
        click.option(
            "--manifest",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Dataset manifest CSV; overrides data.manifest.",
        ),
        click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override a config key, e.g. seg_train.steps=50 (repeatable).",
        ),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


class UnitValues(click.ParamType):
    """One value in [0, 1], or one per decision level separated by commas (``0.3,0.2,0.1``)."""

    name = "X[,X…]"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]  # click's signature
        if isinstance(value, float | tuple):
            return value
        try:
            values = tuple(float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a number or comma-separated numbers", param, ctx)
        if not all(0.0 <= v <= 1.0 for v in values):
            self.fail(f"{value!r}: every value must be in [0, 1]", param, ctx)
        return values[0] if len(values) == 1 else values


class MppValue(click.ParamType):
    """A level-0 pixel size in µm: ``X`` (square pixels) or ``X,Y``."""

    name = "X[,Y]"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]  # click's signature
        if isinstance(value, tuple):
            return value
        try:
            parts = tuple(float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a pixel size in µm (e.g. 0.25 or 0.25,0.26)", param, ctx)
        if len(parts) not in (1, 2) or not all(p > 0 for p in parts):
            self.fail(f"{value!r}: give one or two positive µm values (X or X,Y)", param, ctx)
        return (parts[0], parts[-1])


MPP_HELP = (
    "Level-0 pixel size in µm (X or X,Y), for slides whose file lacks or misstates it; "
    "without it such slides use tissue.fallback_mpp."
)
