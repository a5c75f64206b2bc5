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
  top-down, gives ``random`` (which, like razn, segments only where it breaks) razn's
  number of patches per level in expectation.
* :func:`compute_matched_thresholds` — ``uncertainty`` at razn's *compute*: it segments
  every node it decides on (its signal is f_i's output), so razn's shares cost it more
  patches than they cost razn (on the session-16 benchmark 1.6 ×). Instead its per-level
  thresholds are the ones with the fewest errors on the cached trees among those that
  segment no more patches than razn did there — the strongest ``uncertainty`` of razn's
  cost, as ``docs/method.md`` asks ("a threshold set to match the learned policy's
  compute").
* :func:`budget_matched_thresholds` — ``uncertainty`` at a given number of patches on
  trees whose errors it must not see (the test slides): a set of per-level shares scaled
  by one factor until the patches reach the budget.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from razn.observation import ENTROPY_STAT, TISSUE_STAT
from razn.rewards import (
    Refinement,
    Tissue,
    expand,
    follow_policies,
    oracle_zoom,
    reached_nodes,
)

__all__ = [
    "ENTROPY_STAT",
    "TISSUE_STAT",
    "ComputeMatch",
    "budget_matched_thresholds",
    "compute_matched_thresholds",
    "expand",
    "matched_probabilities",
    "matched_thresholds",
    "oracle_zoom",
    "reached_nodes",
    "segmentations_of",
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


SEARCH_BUDGET = 20_000
"""Most share combinations :func:`compute_matched_thresholds` tries (the grid per level
shrinks with the number of decision levels to stay under it)."""


@dataclass(frozen=True)
class ComputeMatch:
    """``uncertainty``'s per-level thresholds at razn's compute, and what they give on the
    cached trees they were chosen on."""

    thresholds: list[float]
    shares: list[float]
    """Share of the reached tissue nodes zoomed per decision level."""
    patches: int
    """Patches segmented (every decided node and every reached finest node)."""
    errors: float
    """Misclassified pixels at the evaluation resolution."""


def compute_matched_thresholds(
    entropy: Sequence[np.ndarray],
    errors: Sequence[np.ndarray],
    tissue: Sequence[np.ndarray],
    budget: float,
    rate: int,
) -> ComputeMatch:
    """Per-level entropy thresholds for ``uncertainty`` that make the fewest errors while
    segmenting at most ``budget`` patches on the cached trees (ties: fewer patches).

    Shares of the reached nodes from a grid of ``G`` values per decision level (``G`` =
    21 for up to 3 levels, fewer for more, :data:`SEARCH_BUDGET` combinations at most) are
    turned into thresholds top-down (:func:`matched_thresholds`); uncertainty's cost counts
    f_i on every node it decides on (``decide_first=False``). When nothing fits the budget
    the cheapest combination (zoom nothing: ``ud``) is returned.

    Args:
        entropy: per decision level, f_i's mean entropy per node, ``(R, n, n)``.
        errors: per working level (finest included), f_j's misclassified pixels per node.
        tissue: per working level (finest included), the nodes holding tissue (only they
            are segmented).
        budget: patches razn segmented on the same trees.
    """
    levels = len(entropy)
    steps = max(2, min(21, int(SEARCH_BUDGET ** (1 / levels)) if levels else 2))
    grid = np.linspace(0.0, 1.0, steps)
    best: ComputeMatch | None = None
    for shares in itertools.product(grid, repeat=levels):
        thresholds = matched_thresholds(entropy, tissue[:levels], shares, rate)
        zoom = {j: np.asarray(entropy[j]) > thresholds[j] for j in range(levels)}
        outcome = follow_policies(errors, zoom, 0, rate, decide_first=False, tissue=tissue)
        patches, wrong = int(outcome.segmentations.sum()), float(outcome.errors.sum())
        candidate = ComputeMatch(thresholds, [float(s) for s in shares], patches, wrong)
        if best is None or _better(candidate, best, budget):
            best = candidate
    assert best is not None  # the grid is never empty
    zoom = {j: np.asarray(entropy[j]) > best.thresholds[j] for j in range(levels)}
    # The shares the thresholds give (grid values between two nodes' ranks round to them).
    return replace(best, shares=zoom_shares(zoom, tissue[:levels], rate))


def _better(candidate: ComputeMatch, best: ComputeMatch, budget: float) -> bool:
    """Within the budget, fewer errors then fewer patches; outside it only cheaper wins."""
    fits, fitted = candidate.patches <= budget, best.patches <= budget
    if fits != fitted:
        return fits
    if not fits:
        return candidate.patches < best.patches
    return (candidate.errors, candidate.patches) < (best.errors, best.patches)


def budget_matched_thresholds(
    entropy: Sequence[np.ndarray],
    tissue: Sequence[np.ndarray],
    shares: Sequence[float],
    budget: float,
    rate: int,
    steps: int = 40,
) -> ComputeMatch:
    """Per-level entropy thresholds for ``uncertainty`` that segment as many patches as fit
    in ``budget``, without any errors: the per-level ``shares`` (a direction, e.g. the ones
    chosen with errors on other slides; all zero: the same share at every level) scaled by
    the largest factor ``a`` whose patches fit, shares clipped to 1, found by bisection
    (patches grow with ``a`` nearly monotonically — a finer level's share applies to the
    nodes the coarser ones reached — so the bisection keeps the best fitting scale it met).

    ``errors`` of the result is NaN: nothing here knows any. ``patches`` counts f_i on
    every decided node, as :func:`compute_matched_thresholds` does."""
    levels = len(entropy)
    direction = np.asarray(shares, np.float64)
    if direction.size != levels:
        raise ValueError(f"{direction.size} shares for {levels} decision levels")
    if not np.any(direction > 0):
        direction = np.ones(levels)
    structure = [np.zeros(np.shape(t)) for t in tissue]

    def at(scale: float) -> tuple[list[float], list[float], int]:
        wanted = [float(x) for x in np.clip(direction * scale, 0.0, 1.0)]
        thresholds = matched_thresholds(entropy, tissue[:levels], wanted, rate)
        zoom = {j: np.asarray(entropy[j]) > thresholds[j] for j in range(levels)}
        outcome = follow_policies(structure, zoom, 0, rate, decide_first=False, tissue=tissue)
        return (
            thresholds,
            zoom_shares(zoom, tissue[:levels], rate),
            int(outcome.segmentations.sum()),
        )

    low, high = 0.0, 1.0 / float(direction[direction > 0].min())
    best = at(low)
    top = at(high)
    if top[2] <= budget:
        best = top
    else:
        for _ in range(steps):
            middle = (low + high) / 2
            candidate = at(middle)
            if candidate[2] <= budget:
                low, best = middle, candidate
            else:
                high = middle
    thresholds, got, patches = best
    return ComputeMatch(thresholds, got, patches, float("nan"))


def segmentations_of(
    errors: Sequence[np.ndarray],
    zoom: Mapping[int, np.ndarray],
    rate: int,
    refinement: Refinement | None,
    tissue: Tissue,
) -> int:
    """Patches an image-first decider (razn) segments on cached trees with these zooms and
    refinements."""
    outcome = follow_policies(
        errors, zoom, 0, rate, decide_first=True, refinement=refinement, tissue=tissue
    )
    return int(outcome.segmentations.sum())


def matched_probabilities(shares: Sequence[float]) -> list[float]:
    """``random`` zooms each reached node with razn's share at that level: same expected patches."""
    return [float(s) for s in shares]


def stat_maps(observations: Sequence[Mapping[str, np.ndarray]], index: int) -> list[np.ndarray]:
    """One statistic per node from each decision level's cached ``stats``, ``(R, n, n)``."""
    return [np.asarray(obs["stats"][..., index], np.float64) for obs in observations]
