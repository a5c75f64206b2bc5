"""Segmentation modes by name: ``razn`` and the baselines of ``method.md``.

| mode | decider |
|---|---|
| ``razn`` | the learned policies g_i for λ, behind their image-only gates if trained |
| ``ud`` | never zoom: everything at L_0 with f_0 |
| ``cip`` | always zoom: everything at L_m with f_m |
| ``fixed-i`` | zoom down to L_i and segment everything there |
| ``uncertainty`` | zoom where f_i's mean normalised entropy exceeds a threshold |
| ``random`` | zoom with a fixed probability (seeded) |
"""

from __future__ import annotations

import re
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
    policies_dir: Path | None = None,
    lam: float | None = None,
    threshold: float | None = None,
    zoom_probability: float | None = None,
    seed: int = 0,
    policy_seed: int | None = None,
    gates: bool = True,
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
        return UncertaintyThreshold([threshold] * num_levels)
    if mode == "random":
        if zoom_probability is None:
            raise ConfigError("mode random needs --zoom-probability (0–1)")
        return RandomZoom([zoom_probability] * num_levels, seed=seed)
    if mode == "razn":
        from razn.policy.gate import load_gates
        from razn.policy.store import load_policies, policy_folder

        if policies_dir is None or lam is None:
            raise ConfigError("mode razn needs a run directory and λ")
        folder = policy_folder(policies_dir, lam, policy_seed)
        policies = load_policies(folder, num_levels)
        return PolicyDecider(policies, load_gates(folder) if gates else {})
    raise ConfigError(f"unknown mode {mode!r}; choose from {', '.join(MODE_NAMES)}")
