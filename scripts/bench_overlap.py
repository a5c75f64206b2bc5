"""Overlap tiles on a finished benchmark: the Dice they add and the seconds they cost.

    python scripts/bench_overlap.py --benchmark runs/benchmark
    python scripts/bench_overlap.py --benchmark runs/benchmark --margins 0 16 32 --repeats 3

Segments the benchmark's test slides again in cip and in razn at its default λ with each
overlap margin (px of context read on every side of a patch, only the centre kept), scored
and timed as the benchmark does (:mod:`razn.benchmark.overlap_cost`). Prints a Markdown
table and writes ``BENCHMARK/overlap.json``. Keep the machine idle while it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from razn.benchmark.overlap_cost import format_table, measure_overlap, rows_as_json


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", type=Path, required=True, help="a razn benchmark --out")
    parser.add_argument("--margins", type=int, nargs="+", default=[0, 16, 32])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median per slide)")
    parser.add_argument("--modes", nargs="+", default=["cip", "razn"], choices=["cip", "razn"])
    args = parser.parse_args(argv)
    margins = sorted({0, *args.margins})  # margin 0 is what the others are compared with
    rows = measure_overlap(args.benchmark, margins, args.repeats, tuple(args.modes))
    print(format_table(rows))
    out = args.benchmark / "overlap.json"
    out.write_text(json.dumps(rows_as_json(rows), indent=2), encoding="utf-8")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
