"""What a trained policy decides over its level's cached patches, against the oracle."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from razn.engine.deciders import zoom_probability
from razn.observation import policy_view, space_inputs
from razn.policy.store import policy_path
from razn.rewards import RewardConfig


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
