#!/usr/bin/env python3
"""Train the zoom policies g_{m−1} … g_0 bottom-up with PPO: the same as ``razn train-policy``.

    python scripts/train_policy.py --run runs/default
    python scripts/train_policy.py --run runs/default --lambda 0.005 --set policy.timesteps=40000
    python scripts/train_policy.py --run runs/default --held-out val --into /tmp/try-lr \\
        --set policy.learning_rate=0.001

Thin on purpose: the options and the work are those of :mod:`razn.cli.train_policy`.
"""

from __future__ import annotations

import sys

from razn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-policy", *sys.argv[1:]], prog_name="train_policy.py"))
