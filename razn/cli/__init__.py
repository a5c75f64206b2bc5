"""The ``razn`` command line: thin commands that parse, call ``razn.*`` and report.

Each command lives in its own module and is added to the group here. Expected
failures (:class:`~razn.errors.RaznError`) become one line on stderr and exit
code 2; heavy imports happen inside the commands so ``razn --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys

import click

from razn import __version__
from razn.errors import RaznError


class _EchoWarnings(logging.Handler):
    """razn's logged warnings as ``razn: warning: …`` lines on stderr (click's, so that
    they follow redirection and test runners)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"razn: warning: {record.getMessage()}", err=True)


def _show_warnings() -> None:
    logger = logging.getLogger("razn")
    if not any(isinstance(h, _EchoWarnings) for h in logger.handlers):
        logger.addHandler(_EchoWarnings(logging.WARNING))
        logger.setLevel(logging.INFO)


class RaznGroup(click.Group):
    """A click group that turns :class:`RaznError` into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> object:
        _show_warnings()
        try:
            return super().invoke(ctx)
        except RaznError as exc:
            click.echo(f"razn: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=RaznGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="razn")
def main() -> None:
    """razn: segment whole-slide images, zooming in only where it matters.

    \b
    Try it:            razn demo
    Your own slides, in order:
      1. razn info SLIDE...                          check the slides open
      2. razn rasterize ANNOTATION --slide SLIDE --out MASK.tif
                                                     QuPath/ASAP polygons to masks
      3. write manifest.csv: slide,mask,split        (train, val, test)
      4. razn check --manifest manifest.csv          slides and masks agree
      5. razn train --config configs/default.yaml --manifest manifest.csv --run runs/mine
      6. razn segment SLIDE... --run runs/mine --out out
      7. razn inspect out/SLIDE_NAME --truth MASK.tif
      8. razn evaluate --pred out --manifest manifest.csv --split test
    Compare with every baseline: razn benchmark --manifest manifest.csv --out runs/bench
    """


def _register() -> None:
    from razn.cli import (
        benchmark,
        build_cache,
        check,
        demo,
        evaluate,
        info,
        inspect,
        rasterize,
        segment,
        synth,
        train,
        train_policy,
        train_seg,
    )

    commands = (info, synth, rasterize, check, train_seg, build_cache, train_policy, train)
    for module in (*commands, segment, evaluate, inspect, benchmark, demo):
        main.add_command(module.command)


_register()
