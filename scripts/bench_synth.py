"""Time and peak memory of writing one synthetic slide (slide + mask pyramids).

    python scripts/bench_synth.py --size 8192x8192
    python scripts/bench_synth.py --size 50000x50000 --out /data/tmp   # ~2.5 Gpx

Prints wall time, level-0 throughput, peak resident memory of this process (ru_maxrss)
and the file sizes. Output goes to a temporary folder (removed unless --keep).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from razn.data.synth import SynthConfig, write_synthetic_slide


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=(8192, 8192), help="WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the files (default: temporary)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the written files")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="bench-synth-", dir=args.out))
    width, height = args.size
    slide, mask = out / "bench.tiff", out / "bench_mask.tiff"
    start = time.perf_counter()
    write_synthetic_slide(
        slide, mask, width, height, args.seed, SynthConfig(), progress=args.progress
    )
    seconds = time.perf_counter() - start
    report = {
        "size": f"{width}x{height}",
        "wall_s": round(seconds, 2),
        "mpx_per_s": round(width * height / seconds / 1e6, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "slide_mib": round(slide.stat().st_size / 2**20, 1),
        "mask_mib": round(mask.stat().st_size / 2**20, 1),
        "files": str(out) if args.keep else None,
    }
    print(json.dumps(report))
    if not args.keep:
        shutil.rmtree(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
