"""The default segmenter under CPU inference backends: torch eager, channels-last,
torch.compile, ONNX Runtime, OpenVINO (the last two when installed).

    python scripts/bench_cpu_backends.py                     # default config, batch 16
    python scripts/bench_cpu_backends.py --batch 16 --threads 2 --extra-path /tmp/ortlib

The patches are real tissue from a synthetic slide (``razn synth``'s generator) at the
config's patch size, so every backend sees the same inputs. Prints a Markdown table and
writes ``WORK/cpu_backends.json``. ``--extra-path`` appends a folder to ``sys.path`` (e.g. one
made with ``pip install --target DIR onnxruntime onnx openvino``), after the environment's
own packages, so it never shadows them. The issue's adoption rule: ≥ 1.5 × eager's speed
with labels equal on ≥ 99.9 % of pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from razn.benchmark.cpu_backends import BACKENDS, format_table, time_backends
from razn.benchmark.engine_cost import random_segmenters
from razn.config import load_config
from razn.data.synth import SynthConfig, render_tile
from razn.models.factory import Segmenter
from razn.run_config import RunConfig
from razn.run_dir import RunDirectory

ROOT = Path(__file__).resolve().parents[1]


def tissue_patches(count: int, size: int) -> np.ndarray:
    """``(count, size, size, 3)`` uint8 patches of synthetic tissue (a 4096² slide, seed 0)."""
    patches = []
    for y in range(0, 4096 - size + 1, size):
        for x in range(0, 4096 - size + 1, size):
            rgb, _ = render_tile(x, y, size, size, 0, SynthConfig(), (4096, 4096))
            if (rgb.mean(axis=2) < 220).mean() > 0.5:  # mostly tissue, not glass
                patches.append(rgb)
            if len(patches) == count:
                return np.stack(patches)
    raise SystemExit(f"only {len(patches)} tissue patches of {size}² on the slide")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    parser.add_argument(
        "--run", type=Path, help="a trained run: its finest segmenter instead of random weights"
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--work", type=Path, default=Path("runs/bench_cpu_backends"))
    parser.add_argument("--extra-path", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    sys.path.extend(str(p) for p in args.extra_path)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run is not None:
        run = RunDirectory.open(args.run)
        config = run.config

        def model() -> Segmenter:
            return run.load_segmenter(run.num_levels - 1)[0]
    else:
        config = load_config(RunConfig, args.config)

        def model() -> Segmenter:
            return random_segmenters(config)[-1]

    patches = tissue_patches(args.batch, config.levels.patch_size)
    args.work.mkdir(parents=True, exist_ok=True)
    timings = time_backends(
        model,
        patches,
        args.work,
        tuple(args.backends),
        args.repeats,
    )
    print(format_table(timings, patches.shape))
    record = {
        "batch_shape": list(patches.shape),
        "threads": torch.get_num_threads(),
        "weights": str(args.run) if args.run else "random",
    }
    record["backends"] = [asdict(t) for t in timings]
    (args.work / "cpu_backends.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
