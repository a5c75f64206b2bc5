"""Peak memory and wall time of ``razn segment`` on one big synthetic slide.

    python scripts/bench_memory.py --run demo/run                       # 100,000² (the target)
    python scripts/bench_memory.py --run demo/run --size 4096 --work /tmp/bench

Makes (or reuses) a synthetic slide of SIZE² in WORK (``razn synth``'s generator, tile
by tile; about 30 min at 100,000² on 2 cores), then runs ``python -m razn segment`` on it
in a child process and samples the resident memory of that process and its children
(psutil, every 0.1 s). Prints one JSON line and writes it to ``WORK/memory_<size>.json``:
wall seconds, the engine's and the outputs' seconds (``summary.json``'s ``seconds`` and
``output_seconds``) and their ratio, peak RSS in MiB, whether it stayed under
``--limit-mib`` (2048 by default; the exit code is 1 when it did not), and the slide's
patches per level.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from razn.benchmark.process import measure
from razn.data.synth import SynthConfig, write_synthetic_slide


def ensure_slide(work: Path, size: int, seed: int) -> tuple[Path, float]:
    """The slide of ``size``² in ``work`` and the seconds spent making it (0 if reused).

    It is written under a temporary name and renamed when complete, so an interrupted
    run never leaves a slide that looks finished.
    """
    slide = work / f"synthetic_{size}.tiff"
    if slide.is_file():
        return slide, 0.0
    partial = work / f".synthetic_{size}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    start = time.perf_counter()
    tiff, mask = partial / "slide.tiff", partial / "mask.tiff"
    write_synthetic_slide(tiff, mask, size, size, seed, SynthConfig(), progress=True)
    mask.rename(work / f"synthetic_{size}_mask.tiff")
    tiff.rename(slide)
    shutil.rmtree(partial)
    return slide, time.perf_counter() - start


def ratio(part: float | None, whole: float | None) -> float | None:
    """``part / whole`` to 3 decimals, or None when either is missing (a failed run)."""
    if part is None or not whole:
        return None
    return round(part / whole, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="trained run directory")
    parser.add_argument("--size", type=int, default=100_000, help="slide side in pixels")
    parser.add_argument("--work", type=Path, default=Path("bench") / "memory")
    parser.add_argument("--mode", default="razn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-mib", type=float, default=2048.0)
    parser.add_argument("extra", nargs="*", help="more razn segment options, after --")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    slide, synth_seconds = ensure_slide(args.work, args.size, args.seed)
    out = args.work / f"out_{args.size}"
    command = [sys.executable, "-m", "razn", "segment", str(slide), "--run", str(args.run)]
    command += ["--out", str(out), "--mode", args.mode, "--quiet", *args.extra]
    run = measure(command)
    code, seconds, peak = run.exit_code, run.seconds, run.peak_rss
    summary_path = out / slide.stem / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if code == 0 else {}
    peak_mib = peak / 2**20
    report = {
        "size": f"{args.size}x{args.size}",
        "mode": args.mode,
        "exit_code": code,
        "wall_s": round(seconds, 2),
        "engine_s": summary.get("seconds"),
        "outputs_s": summary.get("output_seconds"),
        "outputs_over_engine": ratio(summary.get("output_seconds"), summary.get("seconds")),
        "synth_s": round(synth_seconds, 2),
        "peak_rss_mib": round(peak_mib, 1),
        "limit_mib": args.limit_mib,
        "within_limit": peak_mib <= args.limit_mib,
        "patches": summary.get("patches"),
        "output": str(out / slide.stem),
    }
    line = json.dumps(report)
    (args.work / f"memory_{args.size}.json").write_text(line + "\n", encoding="utf-8")
    print(line)
    return 0 if code == 0 and report["within_limit"] else 1


if __name__ == "__main__":
    sys.exit(main())
