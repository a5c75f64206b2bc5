"""The oracle's curve with and without refine levels, on a run's cached trees.

    python scripts/oracle_ceiling.py --run runs/benchmark/runs/clean --split val

Builds (or reuses) the reward caches of the split's slides with the run's segmenters and
prints, as a Markdown table, the patches and the error share of every ``fixed-i`` and of
the oracle along the λ sweep for image-first decisions, refinement at the last decision
level and refinement at every level (:mod:`razn.benchmark.ceiling`). Never use test
slides to choose a variant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from envs.reward_cache import read_tables
from razn.benchmark.ceiling import ceiling_curves, format_curves
from razn.benchmark.workers import build_slide_cache
from razn.data.manifest import read_manifest
from razn.run_dir import RunDirectory

LAMBDAS = (0.0005, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.08, 0.16)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained run directory")
    parser.add_argument("--split", default="val", help="manifest split whose slides are used")
    parser.add_argument("--lambdas", type=float, nargs="+", default=list(LAMBDAS))
    args = parser.parse_args(argv)
    run = RunDirectory.open(args.run)
    entries = read_manifest(run.config.data.manifest).split(args.split)
    if not entries:
        print(f"no {args.split} slides in {run.config.data.manifest}", file=sys.stderr)
        return 2
    paths = [Path(build_slide_cache(str(run.path), str(e.slide), str(e.mask))) for e in entries]
    tables, _ = read_tables(paths)
    decisions = run.num_levels - 1
    variants = {
        "oracle, image-first": frozenset(),
        "oracle, refine last": frozenset({decisions - 1}),
        "oracle, refine all": frozenset(range(decisions)),
    }
    points = ceiling_curves(tables, run.config, args.lambdas, variants)
    cip = next(p for p in points if p.name == f"fixed-{decisions}")
    print(format_curves(points, cip.total))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
