"""What a trained policy decides over its level's cached patches, against the oracle."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from envs.reward_cache import LevelTable
from envs.zoom import quadrant_rewards
from razn.engine.deciders import zoom_probability
from razn.observation import policy_view, space_inputs
from razn.policy.store import policy_path
from razn.rewards import Refinement, RewardConfig
from razn.run_config import RunConfig


@dataclass
class LevelReport:
    """How a trained policy decides over its level's cached patches."""

    level: int
    patches: int
    zoom_rate: float
    oracle_zoom_rate: float
    agreement: float
    mean_reward: float
    oracle_mean_reward: float
    held_out: dict[str, float] | None = None
    """The comparison on held-out slides (:class:`razn.train.held_out.HeldOutComparison`)."""
    policy: str = "g"
    """``g`` (zoom or break) or ``h`` (a refine level's refine or keep, per quadrant)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        """One line for a user: what the policy decides over its training patches, against
        the oracle (a refine policy's patches are quadrants)."""
        if self.policy == "h":
            return (
                f"refine policy of level {self.level}: refines {self.zoom_rate:.1%} of the "
                f"training quadrants (the oracle {self.oracle_zoom_rate:.1%})"
            )
        return (
            f"zoom policy of level {self.level}: zooms {self.zoom_rate:.1%} of the "
            f"training patches (the oracle {self.oracle_zoom_rate:.1%})"
        )


def policy_decisions(
    policy: Any, observations: Mapping[str, np.ndarray], batch: int = 256
) -> np.ndarray:
    """P(zoom) of ``policy`` for cached observations shaped ``(R, n, n, …)``; same leading
    shape. The policy gets the view of them it was trained on (:func:`policy_view`)."""
    leading = observations["stats"].shape[:3]
    view = policy_view(observations, space_inputs(policy.observation_space))
    flat = {k: v.reshape(-1, *v.shape[3:]) for k, v in view.items()}
    total = len(flat["stats"])
    probabilities = [
        zoom_probability(policy, {k: v[i : i + batch] for k, v in flat.items()})
        for i in range(0, total, batch)
    ]
    if not probabilities:
        return np.zeros(leading, np.float32)
    return np.concatenate(probabilities).reshape(leading)


def refine_decisions(
    refiner: Any,
    tables: Sequence[LevelTable],
    level: int,
    zoom: Mapping[int, np.ndarray],
    config: RunConfig,
    refinement: Refinement,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What h_``level`` decides over cached quadrants, on the level-``level + 1`` grid:
    its P(refine), the reward of refining each quadrant, and the quadrants it is asked
    about (tissue)."""
    probabilities = policy_decisions(refiner, tables[level + 1].parent_observations)
    rate = config.levels.geometry().rate
    rewards = quadrant_rewards(
        tables,
        level,
        rate,
        zoom,
        config.reward,
        config.reward_unit_area,
        refinement,
        config.decide_first,
    )
    return probabilities, rewards, np.asarray(refinement.tissue[level + 1], bool)


def level_report(level: int, zoom_probabilities: np.ndarray, rewards: np.ndarray) -> LevelReport:
    """Compare the policy's decisions with the oracle's (zoom exactly where the reward is positive)."""
    zoom = zoom_probabilities.ravel() > 0.5
    values = rewards.ravel()
    oracle = values > 0
    return LevelReport(
        level=level,
        patches=int(values.size),
        zoom_rate=float(zoom.mean()) if values.size else 0.0,
        oracle_zoom_rate=float(oracle.mean()) if values.size else 0.0,
        agreement=float((zoom == oracle).mean()) if values.size else 0.0,
        mean_reward=float(np.where(zoom, values, 0).mean()) if values.size else 0.0,
        oracle_mean_reward=float(np.where(oracle, values, 0).mean()) if values.size else 0.0,
    )


def save_report(path: Path, report: LevelReport, reward: RewardConfig) -> None:
    """Write the level's report as JSON beside its policy file ``path``."""
    extra = {"level": report.level, "lam": reward.lam, "policy_cost": reward.policy_cost}
    report_path = path.with_suffix(".json")
    report_path.write_text(json.dumps({**extra, **report.as_dict()}, indent=2), encoding="utf-8")


def saved_reports(folder: Path, num_levels: int) -> list[LevelReport]:
    """The reports written beside saved policies, finest decision level first."""
    names = {f.name for f in fields(LevelReport)}
    reports = []
    for level in range(num_levels - 2, -1, -1):
        saved = json.loads(policy_path(folder, level).with_suffix(".json").read_text("utf-8"))
        reports.append(LevelReport(**{k: v for k, v in saved.items() if k in names}))
    return reports
