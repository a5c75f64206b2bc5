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
