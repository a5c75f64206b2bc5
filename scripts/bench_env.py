#!/usr/bin/env python3
"""How fast the zoom environment steps, alone and under PPO, on a run's reward cache.

    python scripts/bench_env.py --run runs/default [--level 2] [--steps 20000]

Builds (or reuses) the run's reward cache, then reports raw ``env.step`` calls per
second (an array look-up each) and PPO training steps per second (rollouts and
updates, ``policy.*`` settings of the run).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument(
        "--level", type=int, default=None, help="default: the level above the finest"
    )
    parser.add_argument("--steps", type=int, default=20000, help="raw environment steps")
    parser.add_argument("--ppo-steps", type=int, default=8192, help="PPO training steps")
    args = parser.parse_args()

    from dataclasses import replace

    from envs.reward_cache import read_tables
    from envs.zoom import ZoomEnv
    from razn.run_dir import RunDirectory
    from razn.train.policy import train_level
    from razn.train.reward_caches import build_reward_cache

    run = RunDirectory.open(args.run)
    config = run.config
    started = time.perf_counter()
    caches = build_reward_cache(run, config, progress=True)
    print(f"reward cache: {len(caches)} slides ready in {time.perf_counter() - started:.1f} s")
    tables, _ = read_tables(caches)
    geometry = config.levels.geometry()
    level = geometry.finest_level - 1 if args.level is None else args.level
    env = ZoomEnv(
        (tables, None),
        level,
        config.reward,
        config.observation,
        geometry.rate,
        unit_area=config.reward_unit_area,
    )
    env.reset(seed=0)
    started = time.perf_counter()
    for step in range(args.steps):
        _, _, terminated, _, _ = env.step(step % 2)
        if terminated:
            env.reset()
    raw = args.steps / (time.perf_counter() - started)
    print(f"level {level}: {env.num_patches} cached patches; raw env.step: {raw:,.0f} steps/s")
    config = replace(config, policy=replace(config.policy, timesteps=args.ppo_steps))
    started = time.perf_counter()
    train_level(tables, level, {}, config, 0, Path("/tmp/razn-bench-env-log"))
    ppo = args.ppo_steps / (time.perf_counter() - started)
    print(f"PPO training (n_envs={config.policy.n_envs}, incl. updates): {ppo:,.0f} steps/s")


if __name__ == "__main__":
    main()
