"""What a λ's policies cost on the val slides' cached trees (behind ``--budget``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envs.reward_cache import read_tables
from envs.zoom import cached_refinement, cached_tissue
from razn.policy.budget import read_validation, validation_cost, write_validation
from razn.policy.store import load_policies, load_refiners
from razn.run_config import RunConfig
from razn.run_dir import RunDirectory
from razn.train.policy_reports import policy_decisions
from razn.train.reward_caches import build_reward_cache
from razn.train.setup import check_manifest

VALIDATION_SPLITS = ("val",)
"""The slides whose cached trees price a λ's policies for ``--budget`` (never test)."""


def ensure_validation_cost(
    run: RunDirectory, config: RunConfig, folder: Path, progress: bool
) -> None:
    """:func:`record_validation_cost` for the saved policies in ``folder``, unless done."""
    if read_validation(folder) is None:
        policies = load_policies(folder, run.num_levels)
        record_validation_cost(run, config, policies, folder, progress)


def record_validation_cost(
    run: RunDirectory,
    config: RunConfig,
    policies: Mapping[int, Any],
    folder: Path,
    progress: bool,
) -> None:
    """Write what ``policies`` cost on the val slides' cached trees to ``folder``
    (:mod:`razn.policy.budget`); nothing when the manifest has no val slides."""
    manifest = check_manifest(config)
    if not any(manifest.split(name) for name in VALIDATION_SPLITS):
        return
    tables, _ = read_tables(build_reward_cache(run, config, progress, VALIDATION_SPLITS))
    decision_levels = range(len(tables) - 1)
    zoom = {j: policy_decisions(policies[j], tables[j].observations) > 0.5 for j in decision_levels}
    tissue = cached_tissue(tables)
    refinement = cached_refinement(tables, config.refine_levels)
    refine = {}
    if refinement is not None:
        for level, refiner in load_refiners(folder, refinement.levels).items():
            shown = tables[level + 1].parent_observations
            refine[level] = (policy_decisions(refiner, shown) > 0.5) & refinement.tissue[level + 1]
    rate = config.levels.geometry().rate
    cost = validation_cost(zoom, tissue, rate, config.reward.lam, VALIDATION_SPLITS, refine)
    write_validation(folder, cost)
