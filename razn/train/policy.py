"""Train the zoom policies g_{m−1} … g_0 bottom-up with Stable-Baselines3 PPO.

g_{m−1} is trained first: its children are final L_m segmentations. Each trained
policy's decisions over the cached nodes of its level then define the children's
outcome for the level above (:func:`razn.rewards.zoom_outcome`), and so on up to
g_0. The environment is a contextual bandit (a decision does not change later
patches), so PPO runs with ``gamma = 0``: the advantage is the reward minus the
value estimate of the patch.

PPO itself is not modified: the image encoder is a features extractor
(:class:`razn.policy.ZoomFeatures`) and logging is a callback. Beside this module:
:mod:`~razn.train.reward_caches` (the cached trees PPO steps through),
:mod:`~razn.train.policy_reports` (decisions against the oracle),
:mod:`~razn.train.policy_files` (saving a level, reusing a set),
:mod:`~razn.train.validation_cost` (a set's price for ``--budget``) and
:mod:`~razn.train.held_out` (judging on held-out slides).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from envs.reward_cache import LevelTable, read_tables
from envs.zoom import ZoomEnv, cached_refinement, cached_tissue, zoom_rewards
from razn.config import dump_yaml, load_config
from razn.errors import ConfigError
from razn.observation import policy_view
from razn.policy.features import policy_kwargs, stats_normalisation
from razn.policy.store import policy_folder, policy_path, record_digest, refine_path
from razn.rewards import Refinement
from razn.run_config import RunConfig
from razn.run_dir import POLICY_SECTIONS, RUNTIME_KEYS, RunDirectory, config_differences
from razn.train.callbacks import TqdmCallback, ZoomStatsCallback
from razn.train.held_out import judge_held_out, judge_held_out_refiner
from razn.train.policy_files import policy_files_ready, save_level
from razn.train.policy_reports import (
    LevelReport,
    level_report,
    policy_decisions,
    refine_decisions,
    saved_reports,
)
from razn.train.reward_caches import build_reward_cache
from razn.train.validation_cost import ensure_validation_cost, record_validation_cost
from razn.train.warm_start import warm_start


def train_level(
    tables: Sequence[LevelTable],
    level: int,
    zoom: Mapping[int, np.ndarray],
    config: RunConfig,
    seed: int,
    log_dir: Path,
    callbacks: Sequence[Any] = (),
    refinement: Refinement | None = None,
    kind: str = "zoom",
) -> PPO:
    """Train g_``level`` (or, with ``kind="refine"``, h_``level``) with PPO on the cached
    ``tables``; returns the trained SB3 model.

    ``zoom`` and ``refinement`` hold the trained decisions of the levels below (and, for
    g_``level``, h_``level``'s). From ``config``: the PPO settings (``policy``), the reward,
    what the level's policy sees (``level_inputs``) and the cost model of every level
    (``decide_first``, :mod:`razn.rewards`)."""
    settings = config.policy
    inputs = "segmentation" if kind == "refine" else config.level_inputs(level)

    def make(index: int) -> Callable[[], Monitor]:
        def build() -> Monitor:
            env = ZoomEnv(
                (list(tables), None),
                level,
                reward=config.reward,
                observation=config.observation,
                rate=config.levels.geometry().rate,
                zoom=zoom,
                episode_length=settings.episode_length,
                sampling=settings.sampling,
                unit_area=config.reward_unit_area,
                inputs=inputs,
                decide_first=config.decide_first,
                refinement=refinement,
                kind=kind,
            )
            env.reset(seed=seed + index)
            return Monitor(env)

        return build

    vec = DummyVecEnv([make(i) for i in range(settings.n_envs)])
    vec.seed(seed)
    if kind == "refine" and refinement is not None:
        shown = tables[level + 1].parent_observations["stats"]
        stats = shown[np.asarray(refinement.tissue[level + 1], bool)]
    else:
        on_tissue = cached_tissue(tables)[level]  # the nodes the env samples
        stats = policy_view(tables[level].observations, inputs)["stats"][on_tissue]
    normalisation = stats_normalisation(stats.reshape(-1, stats.shape[-1]), settings.net)
    model = PPO(
        "MultiInputPolicy",
        vec,
        learning_rate=settings.learning_rate,
        n_steps=settings.n_steps,
        batch_size=settings.batch_size,
        n_epochs=settings.n_epochs,
        gamma=0.0,
        gae_lambda=1.0,
        clip_range=settings.clip_range,
        ent_coef=settings.ent_coef,
        policy_kwargs=policy_kwargs(settings.net, normalisation),
        seed=seed,
        device="cpu",
        verbose=0,
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    model.set_logger(configure(str(log_dir), ["csv"]))
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.torch_threads)
    try:
        if settings.warm_start_epochs:
            _warm_start(model, settings.warm_start_epochs, seed, log_dir)
        model.learn(settings.timesteps, callback=[ZoomStatsCallback(), *callbacks])
    finally:
        torch.set_num_threads(threads)
    return model


def _warm_start(model: PPO, epochs: int, seed: int, log_dir: Path) -> None:
    """Fit ``model``'s policy to every patch of its (first) environment before PPO
    (:mod:`razn.train.warm_start`) and record the fit beside PPO's log."""
    env = model.get_env().envs[0].unwrapped  # type: ignore[union-attr, attr-defined]
    observations, rewards = env.samples()
    report = warm_start(model.policy, observations, rewards, epochs, seed=seed)
    (log_dir / "warm_start.json").write_text(json.dumps(asdict(report), indent=2) + "\n")


def policy_config(
    run: RunDirectory,
    config_path: Path | None,
    overrides: Sequence[str] = (),
    lam: float | None = None,
) -> RunConfig:
    """The run's config with its ``policy`` and ``reward`` sections taken from ``config_path``
    (if given), then ``overrides`` and ``lam`` (λ) applied.

    Anything else that differs from the run's config is refused: the policies must be
    trained against the segmenters the run holds.
    """
    source = config_path if config_path is not None else run.path / "config.yaml"
    wanted = load_config(RunConfig, source, tuple(overrides))
    if lam is not None:
        wanted = replace(wanted, reward=replace(wanted.reward, lam=float(lam)))
    config = replace(run.config, policy=wanted.policy, reward=wanted.reward)
    changed = {
        key
        for key in config_differences(run.config, wanted)
        if key.split(".")[0] not in POLICY_SECTIONS and key not in RUNTIME_KEYS
    }
    if changed:
        raise ConfigError(
            f"differs from the run's config outside {'/'.join(POLICY_SECTIONS)} (at "
            f"{', '.join(sorted(changed))}); policies are trained for the run's own segmenters",
            source,
        )
    return config


def train_policies(
    run: RunDirectory,
    config: RunConfig | None = None,
    progress: bool = False,
    held_out_splits: Sequence[str] = (),
    folder: Path | None = None,
    reuse: bool = False,
) -> list[LevelReport]:
    """Train g_{m−1} … g_0 of ``run`` (a RunDirectory with trained segmenters).

    ``config`` (default: the run's) supplies the ``policy`` and ``reward`` sections; see
    :func:`policy_config`. Builds (or reuses) the reward cache of the slides in
    ``policy.splits``, trains one PPO agent per level bottom-up and writes each as
    ``RUN/policies/lam_<λ>/level_<i>.safetensors`` (or into ``folder``) with a JSON
    report beside it and the resolved config as ``config.yaml`` in the folder. With
    ``held_out_splits`` each level is also judged on those slides' cached trees against
    uncertainty, random and the oracle (:mod:`razn.train.held_out`), in the report.
    When the manifest has val slides, what the policies cost there is written to the
    folder's ``validation.json`` (:mod:`razn.policy.budget`, behind ``--budget``).
    With ``reuse``, policies already in the folder for this config are kept.
    """
    config = config or run.config
    folder = folder or policy_folder(run.policies_dir, config.reward.lam, config.policy.seed)
    if reuse and policy_files_ready(folder, run.num_levels, config):
        ensure_validation_cost(run, config, folder, progress)
        return saved_reports(folder, run.num_levels)
    tables, _ = read_tables(build_reward_cache(run, config, progress))
    reports, _, policies = _train_levels(run, config, tables, progress, held_out_splits, folder)
    record_validation_cost(run, config, policies, folder, progress)
    return reports


def _train_levels(
    run: RunDirectory,
    config: RunConfig,
    tables: Sequence[LevelTable],
    progress: bool,
    held_out_splits: Sequence[str],
    folder: Path,
) -> tuple[list[LevelReport], dict[int, np.ndarray], dict[int, Any]]:
    """PPO, bottom-up (see :func:`train_policies`); the reports, decisions and policies."""
    reward = config.reward
    settings = config.policy
    geometry = config.levels.geometry()
    held_out = (
        read_tables(build_reward_cache(run, config, progress, held_out_splits))[0]
        if held_out_splits
        else None
    )
    folder.mkdir(parents=True, exist_ok=True)
    dump_yaml(config, folder / "config.yaml")
    zoom: dict[int, np.ndarray] = {}
    policies: dict[int, Any] = {}
    held_out_zoom: dict[int, np.ndarray] = {}
    held_out_refine: dict[int, np.ndarray] = {}
    reports = []
    refinement = cached_refinement(tables, config.refine_levels)
    tissue = cached_tissue(tables)
    for level in range(geometry.finest_level - 1, -1, -1):
        seed = (config.seed if settings.seed is None else settings.seed) + level
        if refinement is not None and level in refinement.levels:
            refine, refiner, report = _train_refiner(
                tables, level, zoom, config, seed, folder, progress, refinement
            )
            if held_out is not None:
                comparison = judge_held_out_refiner(
                    refiner, held_out, level, held_out_zoom, held_out_refine, config
                )
                report = replace(report, held_out=comparison.as_dict())
            _save(refiner, refine_path(folder, level), report, config, "segmentation")
            refinement = refinement.with_refine(level, refine)
            reports.append(report)
        bar = [TqdmCallback(settings.timesteps, f"policy level {level}")] if progress else []
        model = train_level(
            tables, level, zoom, config, seed, folder / f"level_{level}_log", bar, refinement
        )
        model.policy.set_training_mode(False)
        probabilities = policy_decisions(model.policy, tables[level].observations)
        rewards = zoom_rewards(
            tables,
            level,
            geometry.rate,
            zoom,
            reward,
            config.reward_unit_area,
            config.decide_first,
            refinement,
        )
        on_tissue = tissue[level]  # the nodes the engine asks about, as the env trains on
        report = level_report(level, probabilities[on_tissue], rewards[on_tissue])
        if held_out is not None:
            comparison = judge_held_out(
                model.policy, held_out, level, held_out_zoom, config, held_out_refine
            )
            report = replace(report, held_out=comparison.as_dict())
        _save(model.policy, policy_path(folder, level), report, config)
        zoom[level] = probabilities > 0.5
        policies[level] = model.policy
        reports.append(report)
    return reports, zoom, policies


def _train_refiner(
    tables: Sequence[LevelTable],
    level: int,
    zoom: Mapping[int, np.ndarray],
    config: RunConfig,
    seed: int,
    folder: Path,
    progress: bool,
    refinement: Refinement,
) -> tuple[np.ndarray, Any, LevelReport]:
    """Train h_``level``; returns its refine decisions over the cached tissue quadrants (on
    the level-``level + 1`` grid), the policy and its report."""
    settings = config.policy
    bar = [TqdmCallback(settings.timesteps, f"refine policy level {level}")] if progress else []
    log_dir = folder / f"refine_{level}_log"
    model = train_level(tables, level, zoom, config, seed, log_dir, bar, refinement, kind="refine")
    model.policy.set_training_mode(False)
    probabilities, rewards, asked = refine_decisions(
        model.policy, tables, level, zoom, config, refinement
    )
    report = replace(level_report(level, probabilities[asked], rewards[asked]), policy="h")
    return (probabilities > 0.5) & asked, model.policy, report


def _save(
    policy: Any, path: Path, report: LevelReport, config: RunConfig, inputs: str | None = None
) -> None:
    """Save a trained policy with its report and record its digest."""
    save_level(policy, path, report, config, inputs)
    record_digest(path)
