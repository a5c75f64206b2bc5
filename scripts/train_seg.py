#!/usr/bin/env python3
"""Train the per-level segmentation networks f_0 … f_m: the same as ``razn train-seg``.

    python scripts/train_seg.py --config configs/default.yaml --run runs/default
    python scripts/train_seg.py --run runs/default          # continue an interrupted run
    python scripts/train_seg.py --config configs/tiny.yaml --set seg_train.steps=10

Thin on purpose: parse, call :mod:`razn.train`, report. Finished levels are skipped
and an interrupted level resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from razn.errors import RaznError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="run config YAML (optional when continuing a run)")
    parser.add_argument("--run", help="run directory (default runs/NAME__seedS__TIME)")
    parser.add_argument("--manifest", help="dataset manifest CSV (overrides data.manifest)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. seg_train.steps=50 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from razn.train import prepare_run, train_segmenters

    try:
        run = prepare_run(args.config, args.run, tuple(args.overrides), args.manifest)
        print(f"run: {run.path}")
        for result in train_segmenters(run, progress=not args.quiet):
            dice = ", ".join(f"{d:.3f}" for d in result.val_dice)
            print(f"level {result.level} (d={result.downsample:g}): val Dice per class {dice}")
    except RaznError as exc:
        print(f"train_seg: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
