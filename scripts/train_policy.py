#!/usr/bin/env python3
"""Train the zoom policies g_{m−1} … g_0 bottom-up with PPO: the same as ``razn train-policy``.

    python scripts/train_policy.py --run runs/default
    python scripts/train_policy.py --run runs/default --lambda 0.005 --set policy.timesteps=40000

Thin on purpose: parse, call :mod:`razn.train.policy`, report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from razn.errors import RaznError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run directory with trained segmenters")
    parser.add_argument("--config", help="config whose policy and reward sections to use")
    parser.add_argument("--lambda", dest="lam", type=float, help="λ, overriding reward.lam")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a policy.* or reward.* key (repeatable)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from razn.run_dir import RunDirectory
    from razn.train.policy import policy_config, train_policies

    try:
        run = RunDirectory.open(args.run)
        config_path = Path(args.config) if args.config else None
        config = policy_config(run, config_path, args.overrides, args.lam)
        for report in train_policies(run, config, progress=not args.quiet):
            print(
                f"level {report.level}: zoom rate {report.zoom_rate:.3f} "
                f"(oracle {report.oracle_zoom_rate:.3f}), agreement {report.agreement:.3f}"
            )
    except RaznError as exc:
        print(f"train_policy: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
