"""Decisions over cached zoom trees: the oracle, and baselines matched to razn's compute.

Works on the reward-cache tables (:mod:`envs.reward_cache`): per working level ``j``
arrays ``(R, n, n, …)`` over the descendants of ``R`` tissue roots (``n = r^j``).
A node is *reached* when every ancestor zoomed; the engine then segments it if it
holds tissue (``stats[..., TISSUE_STAT] > 0``).

* :func:`razn.rewards.oracle_zoom` (re-exported) — zoom exactly where the reward from
  ground truth is positive, bottom-up (the upper bound of ``docs/method.md``).
* :func:`zoom_shares` — the share of reached tissue nodes a decider zooms, per level.
* :func:`matched_thresholds` — per-level entropy thresholds with which ``uncertainty``
  zooms the same share of the nodes *it* reaches as razn did of the nodes razn reached;
  :func:`matched_probabilities` is the same for ``random``. Matching share by share,
  top-down, gives both baselines razn's number of patches per level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from razn.observation import ENTROPY_STAT, TISSUE_STAT
from razn.rewards import expand, oracle_zoom, reached_nodes

__all__ = [
    "ENTROPY_STAT",
    "TISSUE_STAT",
    "expand",
    "matched_probabilities",
    "matched_thresholds",
    "oracle_zoom",
    "reached_nodes",
    "stat_maps",
    "threshold_for_share",
    "zoom_shares",
]


def zoom_shares(
    zoom: Mapping[int, np.ndarray],
    tissue: Sequence[np.ndarray],
    rate: int,
    refine: Mapping[int, np.ndarray] | None = None,
) -> list[float]:
    """Share of the reached tissue nodes zoomed, per decision level (0 where none reached).

    At a refine level (``refine``: the quadrants refined, on the next level's grid) a
    refined quadrant counts as ``1 / (r² − 1)`` of a zoom: a zoom adds ``r² − 1`` patches
    over a break and a refined quadrant one, so the share gives a baseline that cannot
    refine razn's number of patches from that level's nodes."""
    reached = reached_nodes(zoom, tissue, rate, refine)
    shares = []
    for level, mask in enumerate(reached):
        count = int(mask.sum())
        zoomed = mask & np.asarray(zoom[level], bool)
        extra = 0.0
        refined = (refine or {}).get(level)
        if refined is not None:
            broke = expand(mask & ~np.asarray(zoom[level], bool), rate)
            extra = int((broke & np.asarray(refined, bool)).sum()) / (rate * rate - 1)
        shares.append(min((int(zoomed.sum()) + extra) / count, 1.0) if count else 0.0)
    return shares


def threshold_for_share(values: np.ndarray, share: float) -> float:
    """A threshold ``t`` with ``(values > t).mean()`` as close to ``share`` as ties allow.

    With distinct values exactly ``round(share · N)`` of them exceed ``t``: it lies halfway
    between the ``k``-th and ``(k+1)``-th largest.
    """
    values = np.sort(np.asarray(values, np.float64).ravel())[::-1]
    if values.size == 0:
        return 1.0
    k = round(float(np.clip(share, 0.0, 1.0)) * values.size)
    if k <= 0:
        return float(values[0])
    if k >= values.size:
        return float(np.nextafter(values[-1], -np.inf))
    return float((values[k - 1] + values[k]) / 2)


def matched_thresholds(
    entropy: Sequence[np.ndarray],
    tissue: Sequence[np.ndarray],
    shares: Sequence[float],
    rate: int,
) -> list[float]:
    """Per-level entropy thresholds zooming ``shares[j]`` of the nodes uncertainty reaches."""
    thresholds: list[float] = []
    reached = tissue[0].astype(bool)
    for level, share in enumerate(shares):
        threshold = threshold_for_share(entropy[level][reached], share)
        thresholds.append(threshold)
        if level + 1 < len(shares):
            zoomed = reached & (entropy[level] > threshold)
            reached = expand(zoomed, rate) & tissue[level + 1]
    return thresholds


def matched_probabilities(shares: Sequence[float]) -> list[float]:
    """``random`` zooms each reached node with razn's share at that level: same expected patches."""
    return [float(s) for s in shares]


def stat_maps(observations: Sequence[Mapping[str, np.ndarray]], index: int) -> list[np.ndarray]:
    """One statistic per node from each decision level's cached ``stats``, ``(R, n, n)``."""
    return [np.asarray(obs["stats"][..., index], np.float64) for obs in observations]
