"""Segmentation modes by name: ``razn`` and the baselines of ``docs/method.md``.

| mode | decider |
|---|---|
| ``razn`` | the learned policies g_i for λ (by default they see the patch before f_i runs) |
| ``ud`` | never zoom: everything at L_0 with f_0 |
| ``cip`` | always zoom: everything at L_m with f_m |
| ``fixed-i`` | zoom down to L_i and segment everything there |
| ``uncertainty`` | zoom where f_i's mean normalised entropy exceeds a threshold |
| ``random`` | zoom with a fixed probability (seeded) |

``uncertainty`` and ``random`` take one value for every decision level, or one per level
(coarsest first), as the benchmark's compute-matched baselines use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from razn.engine.deciders import (
    Decider,
    FixedLevel,
    PolicyDecider,
    RandomZoom,
    UncertaintyThreshold,
)
from razn.errors import ConfigError

MODE_NAMES = ("razn", "ud", "cip", "fixed-<i>", "uncertainty", "random")


def make_decider(
    mode: str,
    num_levels: int,
    *,
    policies_dir: Path | None = None,
    lam: float | None = None,
    threshold: float | Sequence[float] | None = None,
    zoom_probability: float | Sequence[float] | None = None,
    seed: int = 0,
    policy_seed: int | None = None,
) -> Decider:
    """The decider of ``mode`` (see the module docstring); errors name what is missing."""
    finest = num_levels - 1
    if mode == "ud":
        return FixedLevel(0, name="ud")
    if mode == "cip":
        return FixedLevel(finest, name="cip")
    fixed = re.fullmatch(r"fixed-(\d+)", mode)
    if fixed:
        level = int(fixed[1])
        if level > finest:
            raise ConfigError(f"mode {mode}: level {level} is beyond the finest level {finest}")
        return FixedLevel(level, name=mode)
    if mode == "uncertainty":
        if threshold is None:
            raise ConfigError("mode uncertainty needs --threshold (mean normalised entropy, 0–1)")
        return UncertaintyThreshold(per_level("--threshold", threshold, num_levels))
    if mode == "random":
        if zoom_probability is None:
            raise ConfigError("mode random needs --zoom-probability (0–1)")
        values = per_level("--zoom-probability", zoom_probability, num_levels)
        return RandomZoom(values, seed=seed)
    if mode == "razn":
        from razn.policy.store import (
            load_policies,
            load_refiners,
            policy_folder,
            refine_levels_of,
        )

        if policies_dir is None or lam is None:
            raise ConfigError("mode razn needs a run directory and λ")
        folder = policy_folder(policies_dir, lam, policy_seed)
        policies = load_policies(folder, num_levels)
        return PolicyDecider(policies, refiners=load_refiners(folder, refine_levels_of(folder)))
    raise ConfigError(f"unknown mode {mode!r}; choose from {', '.join(MODE_NAMES)}")


def per_level(option: str, value: float | Sequence[float], num_levels: int) -> list[float]:
    """One value per working level from one value for all decision levels or one per
    decision level (``num_levels − 1``, coarsest first); the finest level never decides."""
    decisions = num_levels - 1
    values = [float(value)] * decisions if isinstance(value, int | float) else list(value)
    if len(values) != decisions:
        raise ConfigError(
            f"{option} takes one value or one per decision level ({decisions} for "
            f"{num_levels} working levels), got {len(values)}"
        )
    return [*map(float, values), 0.0]
