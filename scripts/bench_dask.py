"""Speed-up of ``razn segment --workers N`` (a Dask LocalCluster) over one process.

    python scripts/bench_dask.py --run runs/benchmark/runs/clean \\
        --manifest runs/benchmark/data/clean/manifest.csv --modes cip razn --lambda 0.02

For each mode, segments the same slides twice in child processes, once in one process
and once with ``--workers N``, each into its own folder under WORK, and times both
(wall seconds, from start to exit: the workers' start-up counts); the slide files are
read once before each run, so both find them in the page cache. Then compares every
slide's outputs (labels, zoom map, decisions, regions; P(zoom) within
``--probability-tolerance``). Prints one JSON line per mode and writes them to
``WORK/dask_speedup.json``; the exit code is 1 if a run failed or any output differs.
Keep the machine otherwise idle while it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from razn.benchmark.process import measure, read_through
from razn.engine.inputs import expand_inputs
from razn.errors import RaznError
from razn.outputs.compare import THREAD_TOLERANCE, compare_batches


def segment_command(args: argparse.Namespace, mode: str, out: Path, workers: int) -> list[str]:
    command = [sys.executable, "-m", "razn", "segment", *args.slides, "--run", str(args.run)]
    if args.manifest is not None:
        command += ["--manifest", str(args.manifest)]
    if args.split is not None:
        command += ["--split", args.split]
    if args.lam is not None and mode == "razn":
        command += ["--lambda", str(args.lam)]
    command += ["--mode", mode, "--out", str(out), "--quiet"]
    return command + (["--workers", str(workers)] if workers > 1 else [])


def batch_agreement(one: Path, many: Path, tolerance: float) -> dict[str, Any]:
    """How many slides done in both batches have equal outputs, and the differences."""
    comparisons = compare_batches(one, many, tolerance)
    return {
        "slides_compared": len(comparisons),
        "slides_identical": sum(c.same for c in comparisons.values()),
        "max_probability_difference": max(
            (c.max_probability_difference for c in comparisons.values()), default=0.0
        ),
        "differences": [f"{n}: {d}" for n, c in comparisons.items() for d in c.differences],
    }


def bench_mode(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    one, many = args.work / f"{mode}_one_process", args.work / f"{mode}_workers_{args.workers}"
    for out in (one, many):  # checked before either run: never half a measurement
        if out.exists():
            raise SystemExit(f"{out}: exists; remove it or choose another --work")
    runs = []
    for out, workers in ((one, 1), (many, args.workers)):
        read_through(args.slide_paths)  # both runs start with the slides in the page cache
        runs.append(measure(segment_command(args, mode, out, workers)))
    single, parallel = runs
    failed = single.exit_code != 0 or parallel.exit_code != 0
    report: dict[str, Any] = {
        "mode": mode,
        "workers": args.workers,
        "one_process_s": round(single.seconds, 2),
        "workers_s": round(parallel.seconds, 2),
        "one_process_peak_rss_mib": round(single.peak_rss / 2**20, 1),
        "workers_peak_rss_mib": round(parallel.peak_rss / 2**20, 1),
        "exit_codes": [single.exit_code, parallel.exit_code],
    }
    # from the reported seconds, so that the line agrees with itself
    report["speed_up"] = round(report["one_process_s"] / report["workers_s"], 3)
    if not failed:
        report.update(batch_agreement(one, many, args.probability_tolerance))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("slides", nargs="*", help="slide paths or glob patterns")
    parser.add_argument("--run", type=Path, required=True, help="trained run directory")
    parser.add_argument("--manifest", type=Path, help="also the slides of this manifest")
    parser.add_argument("--split", choices=("train", "val", "test"))
    parser.add_argument("--modes", nargs="+", default=["cip", "razn"])
    parser.add_argument("--lambda", dest="lam", type=float, help="λ of mode razn")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("bench") / "dask")
    parser.add_argument("--probability-tolerance", type=float, default=THREAD_TOLERANCE)
    args = parser.parse_args(argv)
    if not args.slides and args.manifest is None:
        parser.error("give slides or --manifest")
    if args.workers < 2:
        parser.error("--workers must be at least 2")
    try:
        args.slide_paths = expand_inputs(args.slides, args.manifest, args.split)
    except RaznError as exc:
        parser.error(str(exc))
    args.work.mkdir(parents=True, exist_ok=True)
    reports = []
    for mode in args.modes:
        report = bench_mode(args, mode)
        reports.append(report)
        print(json.dumps(report), flush=True)
    lines = "".join(json.dumps(r) + "\n" for r in reports)
    (args.work / "dask_speedup.json").write_text(lines, encoding="utf-8")
    ok = all(r["exit_codes"] == [0, 0] and not r.get("differences") for r in reports)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
