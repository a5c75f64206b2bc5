"""Start-up: how long razn takes from the command to its first patch.

    python scripts/bench_startup.py --run demo/run --slide demo/data/slides/synth_002.tiff
    python scripts/bench_startup.py --run RUN --slide SLIDE --mode cip --repeats 5
    python scripts/bench_startup.py --run RUN --slide SLIDE --compare-collector

Runs ``razn --help``, ``razn info SLIDE`` and ``razn segment SLIDE`` in fresh interpreters
(:mod:`razn.benchmark.startup`) and prints a Markdown table of median seconds. Issue
target: the first patch within 5 s on an idle machine; ``--help`` and ``info`` import no torch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from razn.benchmark.startup import format_table, measure_startup


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a trained run directory")
    parser.add_argument("--slide", required=True, help="the slide to segment")
    parser.add_argument("--mode", default="razn", help="razn (policies) or a baseline")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--compare-collector",
        action="store_true",
        help="also time the first patch with the garbage collector running through the "
        "imports (razn.heavy_imports pauses it)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="razn-startup-") as out:
        rows = measure_startup(
            args.slide, args.run, out, args.repeats, args.mode, args.compare_collector
        )
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
