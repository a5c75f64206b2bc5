"""A compute budget users think in: a share of cip's patch segmentations, mapped to λ.

When the policies of a λ are trained on a run whose manifest has validation slides,
their decisions over those slides' cached zoom trees are followed from the roots down
and the patch segmentations they would cost are counted, per level, against cip's
(every tissue node at the finest level): ``validation.json`` in the policy folder. The
policy folders of a run, one per λ, then form the run's validation curve, and
``razn segment --budget F`` picks the λ whose policies cost the least accuracy within F
(the smallest λ whose validation share is at most F).

Counting on cached trees: a tissue node is reached when every ancestor zoomed (or, at
a refine level, broke and refined it; :func:`razn.rewards.reached_nodes`); a reached node
of a decision level that breaks is one segmentation at its level, and every reached node
of the finest level is one segmentation there. cip costs every finest node holding
tissue, as the engine counts it (``summary.json``'s ``cip_patches``): children without
tissue are never read, so they cost nothing on either side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from razn.errors import ConfigError
from razn.rewards import reached_nodes

VALIDATION_FILE = "validation.json"
VALIDATION_FORMAT = "razn-validation/2"
"""/2: finest children without tissue no longer counted (files of /1 are recomputed)."""


@dataclass(frozen=True)
class ValidationCost:
    """What the policies of one λ cost on the validation slides' cached trees."""

    lam: float
    patches: list[int]
    """Patch segmentations per working level, coarsest first."""
    cip_patches: int
    """cip's patch segmentations on the same slides."""
    ud_patches: int
    """ud's patch segmentations (every tissue root at L_0): the least any decider needs."""
    splits: list[str]

    @property
    def share(self) -> float:
        """The policies' patches as a share of cip's."""
        return sum(self.patches) / self.cip_patches if self.cip_patches else 0.0


def validation_cost(
    zoom: Mapping[int, np.ndarray],
    tissue: Sequence[np.ndarray],
    rate: int,
    lam: float,
    splits: Sequence[str],
    refine: Mapping[int, np.ndarray] | None = None,
) -> ValidationCost:
    """The cost of decisions ``zoom`` (by decision level, bool ``(R, n, n)``) and, at refine
    levels, ``refine`` (the quadrants refined, on the next level's grid) on cached trees
    whose tissue nodes per working level, the finest included, are ``tissue`` (see the
    module docstring)."""
    finest = len(tissue) - 1
    reached = reached_nodes(zoom, tissue, rate, refine)
    patches = [int((reached[j] & ~np.asarray(zoom[j], bool)).sum()) for j in range(finest)]
    patches.append(int(reached[finest].sum()))
    return ValidationCost(
        lam=float(lam),
        patches=patches,
        cip_patches=int(np.asarray(tissue[finest], bool).sum()),
        ud_patches=int(np.asarray(tissue[0], bool).sum()),
        splits=list(splits),
    )


def write_validation(folder: Path, cost: ValidationCost) -> Path:
    """Write ``cost`` as ``validation.json`` in the policy folder."""
    record = {"format": VALIDATION_FORMAT, **asdict(cost), "share": cost.share}
    path = Path(folder) / VALIDATION_FILE
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return path


def read_validation(folder: Path) -> ValidationCost | None:
    """The ``validation.json`` of a policy folder; None when it has none (or a foreign one)."""
    try:
        record = json.loads((Path(folder) / VALIDATION_FILE).read_text(encoding="utf-8"))
        if record.get("format") != VALIDATION_FORMAT:
            return None
        return ValidationCost(
            float(record["lam"]),
            [int(p) for p in record["patches"]],
            int(record["cip_patches"]),
            int(record["ud_patches"]),
            [str(s) for s in record["splits"]],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def validation_curve(policies_dir: Path) -> list[ValidationCost]:
    """The validation costs of every λ trained in a run (``lam_<λ>/``, the run's own seed),
    cheapest first."""
    folders = sorted(Path(policies_dir).glob("lam_*")) if Path(policies_dir).is_dir() else []
    costs = [read_validation(f) for f in folders if "_seed_" not in f.name]
    return sorted((c for c in costs if c is not None), key=lambda c: (c.share, -c.lam))


def lambda_for_budget(policies_dir: Path, budget: float) -> ValidationCost:
    """The trained λ to use for at most ``budget`` × cip's patches: the smallest λ (the most
    accurate policies) whose validation share is within the budget.

    Raises:
        ConfigError: no validation curve, a budget below what ud needs, or no trained λ
            cheap enough (each names the figures).
    """
    curve = validation_curve(policies_dir)
    if not curve:
        raise ConfigError(
            "no validation curve to map --budget to λ: train policies on a run whose manifest "
            "has val slides (razn train-policy writes validation.json per λ)",
            policies_dir,
        )
    ud_share = curve[0].ud_patches / curve[0].cip_patches if curve[0].cip_patches else 0.0
    if budget < ud_share:
        raise ConfigError(
            f"--budget {budget:g} is below what ud needs ({ud_share:.3f} of cip's patches on "
            "the validation slides): no zoom decisions can cost less"
        )
    within = [c for c in curve if c.share <= budget]
    if not within:
        cheapest = curve[0]
        raise ConfigError(
            f"no trained λ fits --budget {budget:g}: the cheapest, λ={cheapest.lam:g}, needs "
            f"{cheapest.share:.3f} of cip's patches on the validation slides; train a larger λ"
        )
    return min(within, key=lambda c: c.lam)
