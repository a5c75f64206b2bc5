"""The reward the oracle would have seen at every node the engine visited.

With ground truth, each decision row of a slide's outputs gets the reward of zooming
that node (:mod:`razn.rewards`: finest-patch areas of pixels fixed minus λ times the
extra compute) when the levels below follow the oracle. Positive: zooming helped.
The values come from the slide's reward cache (built once with the run's segmenters,
reused afterwards; see :mod:`envs.reward_cache`), so they are exactly what the
policies were trained to predict.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from razn.errors import OutputError
from razn.inspection.outputs import SlideOutputs
from razn.rewards import oracle_rewards


def decision_rewards(
    outputs: SlideOutputs,
    truth: str | Path,
    run: str | Path | None = None,
    lam: float | None = None,
    progress: str = "quiet",
) -> np.ndarray:
    """Per row of ``outputs.decisions()``: the oracle's zoom reward, NaN for rows at the
    finest level and for nodes without tissue.

    Args:
        truth: the slide's ground-truth label mask.
        run: the run directory whose segmenters made the outputs (default: the one
            named in ``summary.json``).
        lam: λ of the reward (default: the outputs' λ, else the run's).
        progress: ``bar``, ``log`` or ``quiet`` while the slide's reward cache is built
            (f_0 … f_m over every node: minutes for a large slide, once).
    """
    from envs.reward_cache import ensure_slide_cache, read_tables
    from razn.run_dir import RunDirectory

    run_dir = RunDirectory.open(_run_path(outputs, run))
    config = run_dir.config
    _check_geometry(outputs, config)
    if outputs.slide_path is None:
        raise OutputError("summary.json names no slide", outputs.folder)
    if lam is None:
        lam = outputs.summary.get("lambda")
    if lam is None:
        lam = config.reward.lam
    config = replace(config, reward=replace(config.reward, lam=float(lam)))
    paths = [run_dir.segmenter_path(level) for level in range(run_dir.num_levels)]
    run_dir.cache_dir.mkdir(parents=True, exist_ok=True)
    cache = ensure_slide_cache(
        outputs.slide_path,
        Path(truth),
        run_dir.load_segmenters,
        paths,
        config,
        run_dir.cache_dir,
        progress,
    )
    tables, roots = read_tables([cache])
    rate = config.levels.geometry().rate
    errors, area = [t.errors for t in tables], [t.area for t in tables]
    from envs.zoom import cached_refinement, cached_tissue

    rewards = oracle_rewards(
        errors,
        area,
        config.reward,
        rate,
        config.reward_unit_area,
        config.decide_first,
        cached_refinement(tables, config.refine_levels),
        cached_tissue(tables),
    )
    return _look_up(outputs.decisions(), rewards, roots[0], rate)


def _look_up(decisions, rewards: dict[int, np.ndarray], roots: np.ndarray, rate: int) -> np.ndarray:
    """Index each row's node into the cache's ``(R, n, n)`` arrays of its level."""
    root_index = {(int(c), int(r)): k for k, (c, r) in enumerate(roots)}
    values = np.full(len(decisions), np.nan)
    for i, (level, col, row, action) in enumerate(
        zip(
            decisions["level"], decisions["col"], decisions["row"], decisions["action"], strict=True
        )
    ):
        if level not in rewards or action == "empty":
            continue
        n = rate**level
        k = root_index.get((col // n, row // n))
        if k is not None:
            values[i] = rewards[level][k, row % n, col % n]
    return values


def _run_path(outputs: SlideOutputs, run: str | Path | None) -> Path:
    if run is not None:
        return Path(run)
    named = outputs.summary.get("run")
    if not named:
        raise OutputError("summary.json names no run; pass the run directory", outputs.folder)
    return Path(named)


def _check_geometry(outputs: SlideOutputs, config) -> None:
    levels = config.levels
    if [float(d) for d in levels.downsamples] != outputs.working_downsamples or (
        levels.patch_size != outputs.patch_size
    ):
        raise OutputError(
            f"segmented with working downsamples {outputs.working_downsamples} and "
            f"{outputs.patch_size}-px patches, but the run has {list(levels.downsamples)} "
            f"and {levels.patch_size}-px",
            outputs.folder,
        )
