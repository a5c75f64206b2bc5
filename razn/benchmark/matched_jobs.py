"""The ``uncertainty`` and ``random`` jobs matched to razn's compute at the default λ.

Two matchings per policy seed, both from the reward caches' zoom trees:

* **on the** ``match_split`` **slides** (the protocol a user can reproduce: nothing is set
  on the scored slides): ``uncertainty``'s per-level thresholds are the ones with the
  fewest errors among those that segment no more patches than razn there
  (:func:`razn.benchmark.matching.compute_matched_thresholds`); ``random`` zooms razn's
  share of the nodes per level.
* **on the test slides' compute** (``match_test_compute``): val-chosen settings spend what
  they spend on the test slides, which need not be razn's test patches (session 22:
  uncertainty 112 against razn's 159). These rows spend razn's own test patches, set from
  the test slides' *images* only — f_i's entropy on their cached trees and razn's
  decisions there, the masks' errors zeroed before anything is counted — so that "at
  equal compute" is exactly that. ``uncertainty`` keeps its val-chosen shares' shape,
  scaled by one factor (:func:`razn.benchmark.matching.budget_matched_thresholds`);
  ``random`` zooms razn's test shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from razn.benchmark.jobs import Context, Job, cache_path
from razn.benchmark.matching import (
    ENTROPY_STAT,
    TISSUE_STAT,
    budget_matched_thresholds,
    compute_matched_thresholds,
    matched_probabilities,
    segmentations_of,
    stat_maps,
    zoom_shares,
)
from razn.data.manifest import ManifestEntry
from razn.errors import ConfigError
from razn.rewards import Refinement
from razn.run_dir import RunDirectory


@dataclass(frozen=True)
class Trees:
    """What matching reads from the cached zoom trees of some slides (roots concatenated)."""

    observations: list[dict[str, np.ndarray]]
    """Per decision level, the cached policy observations."""
    parent_observations: list[dict[str, np.ndarray]]
    """Per working level, the parents' cached views (what a refiner sees)."""
    entropy: list[np.ndarray]
    """Per decision level, f_i's mean entropy per node, ``(R, n, n)``."""
    tissue: list[np.ndarray]
    """Per working level (finest included), the nodes the engine would segment."""
    errors: list[np.ndarray]
    """Per working level, f_j's misclassified pixels per node (zero without labels)."""
    refinement: Refinement | None


def read_trees(run: RunDirectory, entries: Sequence[ManifestEntry], labels: bool = True) -> Trees:
    """The cached trees of ``entries``; ``labels=False`` zeroes every error, so that nothing
    computed from them can depend on the masks (patch counts never do)."""
    from envs.reward_cache import read_tables
    from envs.zoom import cached_refinement, cached_tissue

    tables, _ = read_tables([cache_path(run, e) for e in entries])
    decision_levels = range(run.num_levels - 1)
    observations = [tables[j].observations for j in decision_levels]
    refinement = cached_refinement(tables, run.config.refine_levels)
    errors = [t.errors for t in tables]
    if not labels:
        errors = [np.zeros_like(e) for e in errors]
        if refinement is not None:
            blank = [None if e is None else np.zeros_like(e) for e in refinement.parent_errors]
            refinement = replace(refinement, parent_errors=blank)
    return Trees(
        observations,
        [t.parent_observations for t in tables],
        stat_maps(observations, ENTROPY_STAT),
        cached_tissue(tables),
        errors,
        refinement,
    )


@dataclass(frozen=True)
class RaznPolicies:
    """The policies of one trained set: g_i per decision level, h_i per refine level."""

    policies: dict[int, Any]
    refiners: dict[int, Any]


def load_razn(run: RunDirectory, lam: float, seed: int | None) -> RaznPolicies:
    """The policy set of ``(lam, seed)``, loaded once for every tree set it decides on."""
    from razn.policy.store import load_policies, load_refiners, policy_folder

    folder = policy_folder(run.policies_dir, lam, seed)
    return RaznPolicies(
        load_policies(folder, run.num_levels), load_refiners(folder, run.config.refine_levels)
    )


@dataclass(frozen=True)
class RaznOnTrees:
    """razn's decisions on cached trees: its zoom shares and the patches it segments."""

    shares: list[float]
    patches: int


def razn_on_trees(run: RunDirectory, trees: Trees, razn: RaznPolicies) -> RaznOnTrees:
    """razn's policies deciding every cached node as the engine would."""
    from razn.train.policy_reports import policy_decisions

    decision_levels = range(run.num_levels - 1)
    zoom = {
        j: policy_decisions(razn.policies[j], trees.observations[j]) > 0.5 for j in decision_levels
    }
    refine = {}
    if trees.refinement is not None:
        for level, refiner in razn.refiners.items():
            shown = trees.parent_observations[level + 1]
            asked = trees.refinement.tissue[level + 1]
            refine[level] = (policy_decisions(refiner, shown) > 0.5) & asked
    rate = run.config.levels.geometry().rate
    root_tissue = [m > 0 for m in stat_maps(trees.observations, TISSUE_STAT)]
    shares = zoom_shares(zoom, root_tissue, rate, refine)
    refinement = None if trees.refinement is None else replace(trees.refinement, refine=refine)
    patches = segmentations_of(trees.errors, zoom, rate, refinement, trees.tissue)
    return RaznOnTrees(shares, patches)


def random_job(seed: int, matched_to: str, matched_on: str, shares: Sequence[float]) -> Job:
    """``random`` zooming razn's share of the reached nodes per level (same expected patches)."""
    params = {
        "matched_to": matched_to,
        "matched_on": matched_on,
        "shares": list(shares),
        "probabilities": matched_probabilities(shares),
    }
    return Job("clean", "random", None, seed, params)


def matched_jobs(ctx: Context, modes: set[str]) -> list[Job]:
    """``uncertainty`` and ``random`` jobs matched, per seed, to razn at the default λ: on the
    ``match_split`` slides, and (``match_test_compute``) on the test slides' compute."""
    run = ctx.clean
    split = ctx.config.match_split
    entries = ctx.manifests["clean"].split(split)
    if not entries:
        raise ConfigError(f"no {split} slides to match compute on")
    trees = read_trees(run, entries)
    test_trees = (
        read_trees(run, ctx.manifests["clean"].split("test"), labels=False)
        if ctx.config.match_test_compute
        else None
    )
    rate = run.config.levels.geometry().rate
    jobs = []
    val_shares: list[float] = []  # uncertainty's on the match_split slides (when it runs)
    for seed in ctx.config.seeds:
        policies = load_razn(run, ctx.default_lambda, ctx.policy_seed(seed))
        razn = razn_on_trees(run, trees, policies)
        matched_to = f"razn λ={ctx.default_lambda:g} seed={seed}"
        if "uncertainty" in modes:
            uncertainty = compute_matched_thresholds(
                trees.entropy, trees.errors, trees.tissue, razn.patches, rate
            )
            val_shares = uncertainty.shares
            params = {
                "matched_to": matched_to,
                "matched_on": split,
                "shares": uncertainty.shares,  # uncertainty's own, not razn's
                "thresholds": uncertainty.thresholds,
                "val_patches": {"razn": razn.patches, "uncertainty": uncertainty.patches},
            }
            jobs.append(Job("clean", "uncertainty", None, seed, params))
            ctx.log(
                f"uncertainty at razn seed {seed}'s compute: {uncertainty.patches} patches "
                f"against razn's {razn.patches} on the {split} slides' cached trees"
            )
        if "random" in modes:
            jobs.append(random_job(seed, matched_to, split, razn.shares))
        ctx.log(
            f"matched to razn seed {seed} on {len(entries)} {split} slides: "
            f"zoom shares {', '.join(f'{s:.3f}' for s in razn.shares)}"
        )
        if test_trees is not None:
            razn = razn_on_trees(run, test_trees, policies)
            jobs += _test_compute_jobs(ctx, modes, test_trees, razn, seed, val_shares)
    return jobs


def _test_compute_jobs(
    ctx: Context,
    modes: set[str],
    trees: Trees,
    razn: RaznOnTrees,
    seed: int,
    val_shares: Sequence[float],
) -> list[Job]:
    """The matched jobs of one seed at razn's compute (``razn``, decided on ``trees``) on
    the test slides (images only)."""
    rate = ctx.clean.config.levels.geometry().rate
    matched_to = f"razn λ={ctx.default_lambda:g} seed={seed}"
    jobs = []
    if "uncertainty" in modes:
        match = budget_matched_thresholds(
            trees.entropy, trees.tissue, val_shares, razn.patches, rate
        )
        params = {
            "matched_to": matched_to,
            "matched_on": "test",
            "shares": match.shares,
            "thresholds": match.thresholds,
            "test_patches": {"razn": razn.patches, "uncertainty": match.patches},
        }
        jobs.append(Job("clean", "uncertainty", None, seed, params))
        ctx.log(
            f"uncertainty at razn seed {seed}'s test compute: {match.patches} patches against "
            f"razn's {razn.patches} on the test slides' cached trees (images only)"
        )
    if "random" in modes:
        jobs.append(random_job(seed, matched_to, "test", razn.shares))
    return jobs
