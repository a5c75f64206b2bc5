"""The engine's cost against the plain network, on the default and the demo configs.

    python scripts/bench_engine.py                          # both configs, 4096² slide
    python scripts/bench_engine.py --size 8192 --threads 1 --work /tmp/bench_engine
    python scripts/bench_engine.py --backends torch openvino

Makes (or reuses) one synthetic slide of SIZE² in WORK, segments it in cip mode with each
config's geometry and network (random weights: speed does not depend on them), warm and in
process, then pushes the same finest-level patches through the network alone
(:mod:`razn.benchmark.engine_cost`). Prints a Markdown table and writes
``WORK/engine_cost.json``. Issue targets: engine ÷ network ≤ 1.15 (default config),
≤ 1.3 (demo config).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from razn.benchmark.engine_cost import format_table, measure_engine_cost
from razn.config import load_config
from razn.data.synth import SynthConfig, write_synthetic_slide
from razn.demo import DEMO_OVERRIDES
from razn.run_config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "default": (ROOT / "configs" / "default.yaml", ()),
    "demo": (None, DEMO_OVERRIDES),
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="slide side (level-0 px)")
    parser.add_argument("--work", type=Path, default=Path("runs/bench_engine"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--backends", nargs="+", default=["torch"], choices=["torch", "openvino"],
        help="inference backends to measure (each config under each)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    slide = args.work / f"synthetic_{args.size}.tiff"
    if not slide.is_file():
        mask = args.work / f"synthetic_{args.size}_mask.tiff"
        write_synthetic_slide(slide, mask, args.size, args.size, 0, SynthConfig(), progress=True)
    costs = []
    for name in args.configs:
        path, overrides = CONFIGS[name]
        config = load_config(RunConfig, path, overrides)
        for backend in args.backends:
            cost = measure_engine_cost(
                name, slide, config, args.work, batch_size=args.batch_size, backend=backend
            )
            costs.append(cost)
            print(f"{cost.config}: {json.dumps(cost.as_dict())}", flush=True)
    print(format_table(costs))
    record = [c.as_dict() for c in costs]
    (args.work / "engine_cost.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
