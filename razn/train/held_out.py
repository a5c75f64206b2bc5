"""Judge a level's zoom policy on held-out cached trees against the baselines at equal zooms.

On the nodes of one working level (the reward cache's ``(R, n, n)`` arrays, tissue
nodes only) the policy zooms some number ``k`` of them. Its summed reward is compared
with what the ground truth allows (the oracle: every positive reward), with zooming
the ``k`` nodes of highest mean entropy (``uncertainty`` at the same number of zooms)
and with zooming ``k`` nodes at random (in expectation). Rewards are in the units of
:mod:`razn.rewards`: finest-patch areas of pixels fixed, minus λ times the compute.
A policy that does not beat ``uncertainty`` here has not yet learned more than f_i's
entropy tells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.reward_cache import LevelTable
from envs.zoom import cached_refinement, zoom_rewards
from razn.observation import ENTROPY_STAT, TISSUE_STAT
from razn.run_config import RunConfig
from razn.train.policy_reports import policy_decisions, refine_decisions


@dataclass(frozen=True)
class HeldOutComparison:
    """Summed zoom rewards of one level's held-out tissue nodes under four deciders."""

    level: int
    nodes: int
    """Tissue nodes of the level."""
    zoomed: int
    """Nodes the policy zooms (P(zoom) > 0.5)."""
    policy: float
    uncertainty: float
    """Reward of zooming the ``zoomed`` nodes of highest mean entropy."""
    random: float
    """Expected reward of zooming ``zoomed`` nodes drawn at random."""
    oracle: float
    """Reward of zooming exactly the nodes whose reward is positive."""

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def compare_level(
    level: int,
    zoom_probability: np.ndarray,
    rewards: np.ndarray,
    entropy: np.ndarray,
    tissue: np.ndarray,
) -> HeldOutComparison:
    """Compare the policy's zooms with the baselines on one level's nodes (same shapes)."""
    on_tissue = np.asarray(tissue, bool).ravel()
    values = np.asarray(rewards, np.float64).ravel()[on_tissue]
    zoom = np.asarray(zoom_probability).ravel()[on_tissue] > 0.5
    k = int(zoom.sum())
    # A stable sort on -entropy: ties keep raster order, so the result is deterministic.
    by_entropy = np.argsort(-np.asarray(entropy, np.float64).ravel()[on_tissue], kind="stable")
    return HeldOutComparison(
        level=level,
        nodes=int(values.size),
        zoomed=k,
        policy=float(values[zoom].sum()),
        uncertainty=float(values[by_entropy[:k]].sum()),
        random=float(values.mean() * k) if values.size else 0.0,
        oracle=float(values[values > 0].sum()),
    )


def judge_held_out(
    policy: Any,
    tables: Sequence[LevelTable],
    level: int,
    zoom: dict[int, np.ndarray],
    config: RunConfig,
    refine: dict[int, np.ndarray] | None = None,
) -> HeldOutComparison:
    """Compare ``policy`` (g_``level``) with the baselines on held-out cached ``tables``;
    records its decisions in ``zoom`` for the level above. ``refine`` holds the held-out
    decisions of the refine policies judged so far (:func:`judge_held_out_refiner`)."""
    observations = tables[level].observations
    probabilities = policy_decisions(policy, observations)
    rate = config.levels.geometry().rate
    refinement = cached_refinement(tables, config.refine_levels, refine)
    rewards = zoom_rewards(
        tables,
        level,
        rate,
        zoom,
        config.reward,
        config.reward_unit_area,
        config.decide_first,
        refinement,
    )
    stats = observations["stats"]
    zoom[level] = probabilities > 0.5
    return compare_level(
        level, probabilities, rewards, stats[..., ENTROPY_STAT], stats[..., TISSUE_STAT] > 0
    )


def judge_held_out_refiner(
    refiner: Any,
    tables: Sequence[LevelTable],
    level: int,
    zoom: dict[int, np.ndarray],
    refine: dict[int, np.ndarray],
    config: RunConfig,
) -> HeldOutComparison:
    """Compare ``refiner`` (h_``level``) on held-out tissue quadrants with refining the same
    number by f_level's entropy there, at random, and the oracle; records its decisions in
    ``refine``."""
    refinement = cached_refinement(tables, config.refine_levels, refine)
    if refinement is None:
        raise ValueError(f"level {level} is not a refine level")
    probabilities, rewards, asked = refine_decisions(
        refiner, tables, level, zoom, config, refinement
    )
    refine[level] = (probabilities > 0.5) & asked
    entropy = tables[level + 1].parent_observations["stats"][..., ENTROPY_STAT]
    return compare_level(level, probabilities, rewards, entropy, asked)
