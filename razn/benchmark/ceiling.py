"""The method's ceiling on cached trees: the oracle's patches and errors along a λ sweep.

For the cached trees of some slides (:mod:`envs.reward_cache`), the oracle of each λ
(:func:`razn.rewards.oracle_plan`) is followed from the roots: the patches it segments
per level (as :func:`razn.policy.budget.validation_cost` counts them) and the pixels it
gets wrong at the evaluation resolution, beside every ``fixed-i``. Comparing the curves
of different refine levels tells, before any policy is trained, how much a variant of the
method can gain at best (no test slide is needed: run it on val).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from envs.reward_cache import LevelTable
from envs.zoom import cached_refinement, cached_tissue
from razn.policy.budget import validation_cost
from razn.rewards import follow_policies, oracle_plan
from razn.run_config import RunConfig


@dataclass(frozen=True)
class CurvePoint:
    """One decider's cost and error over the cached trees."""

    name: str
    lam: float | None
    patches: list[int]
    """Patch segmentations per level, coarsest first."""
    error: float
    """Misclassified scored pixels as a share of all scored pixels."""

    @property
    def total(self) -> int:
        return sum(self.patches)


def ceiling_curves(
    tables: Sequence[LevelTable],
    config: RunConfig,
    lambdas: Iterable[float],
    variants: dict[str, frozenset[int]],
) -> list[CurvePoint]:
    """``fixed-i`` for every level, then the oracle at every λ for each named set of refine
    levels in ``variants`` (e.g. ``{"image-first": frozenset(), "refine last": {2}}``)."""
    rate = config.levels.geometry().rate
    errors = [t.errors for t in tables]
    area = [t.area for t in tables]
    scored = float(np.sum(area[0])) or 1.0
    decisions = len(tables) - 1
    tissue = cached_tissue(tables)
    points = []
    for level in range(decisions + 1):
        zoom = {j: np.full(errors[j].shape, j < level) for j in range(decisions)}
        outcome = follow_policies(errors, zoom, 0, rate, tissue=tissue)
        cost = validation_cost(zoom, tissue, rate, 0.0, [])
        points.append(
            CurvePoint(f"fixed-{level}", None, cost.patches, outcome.errors.sum() / scored)
        )
    for name, levels in variants.items():
        refinement = cached_refinement(tables, levels)
        for lam in sorted(lambdas):
            reward = replace(config.reward, lam=float(lam))
            plan = oracle_plan(
                errors,
                area,
                reward,
                rate,
                config.reward_unit_area,
                config.decide_first,
                refinement,
                tissue,
            )
            chosen = None if refinement is None else replace(refinement, refine=plan.refine)
            outcome = follow_policies(
                errors, plan.zoom, 0, rate, config.decide_first, chosen, tissue
            )
            cost = validation_cost(plan.zoom, tissue, rate, lam, [], plan.refine)
            points.append(CurvePoint(name, float(lam), cost.patches, outcome.errors.sum() / scored))
    return points


def format_curves(points: Sequence[CurvePoint], cip_patches: int) -> str:
    """A Markdown table of ``points``."""
    lines = [
        "| decider | λ | patches per level | patches | × cip | error share |",
        "|---|---|---|---|---|---|",
    ]
    for p in points:
        lam = "" if p.lam is None else f"{p.lam:g}"
        share = p.total / cip_patches if cip_patches else 0.0
        lines.append(
            f"| {p.name} | {lam} | {' / '.join(map(str, p.patches))} | {p.total} "
            f"| {share:.2f} | {p.error:.4f} |"
        )
    return "\n".join(lines)
