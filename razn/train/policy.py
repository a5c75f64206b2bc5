"""Train the zoom policies g_{m−1} … g_0 bottom-up with Stable-Baselines3 PPO.

g_{m−1} is trained first: its children are final L_m segmentations. Each trained
policy's decisions over the cached nodes of its level then define the children's
outcome for the level above (:func:`razn.rewards.zoom_outcome`), and so on up to
g_0. The environment is a contextual bandit (a decision does not change later
patches), so PPO runs with ``gamma = 0``: the advantage is the reward minus the
value estimate of the patch.

PPO itself is not modified: the image encoder is a features extractor
(:class:`razn.policy.ZoomFeatures`) and logging is a callback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from envs.reward_cache import ensure_slide_cache, read_tables
from envs.zoom import ZoomEnv, zoom_rewards
from razn.config import dump_yaml, load_config
from razn.data.manifest import ManifestEntry
from razn.engine.deciders import zoom_probability
from razn.engine.progress import progress_mode, tracked
from razn.errors import ConfigError, MaskError, RaznError
from razn.observation import ENTROPY_STAT, TISSUE_STAT, policy_view, space_inputs
from razn.policy.budget import read_validation, validation_cost, write_validation
from razn.policy.features import policy_kwargs, stats_normalisation
from razn.policy.store import (
    load_policies,
    policy_folder,
    policy_path,
    record_digest,
    save_policy,
    verify_digest,
)
from razn.rewards import RewardConfig
from razn.run_config import RunConfig
from razn.run_dir import POLICY_SECTIONS, RUNTIME_KEYS, config_differences
from razn.train.callbacks import TqdmCallback, ZoomStatsCallback
from razn.train.held_out import HeldOutComparison, compare_level
from razn.train.setup import check_manifest
from razn.training_config import PolicyTrainConfig


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

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def train_level(
    tables: Sequence[Any],
    level: int,
    zoom: Mapping[int, np.ndarray],
    settings: PolicyTrainConfig,
    reward: RewardConfig,
    observation: Any,
    rate: int,
    seed: int,
    log_dir: Path,
    callbacks: Sequence[Any] = (),
    *,
    unit_area: float,
    inputs: str | None = None,
    decide_first: Any = None,
):
    """Train g_``level`` with PPO on the cached ``tables``; returns the trained SB3 model.
    ``inputs`` (default ``settings.inputs``) is what the policy sees; ``decide_first`` the
    cost model of every level (:mod:`razn.rewards`; default: from ``inputs``)."""
    inputs = settings.inputs if inputs is None else inputs

    def make(index: int) -> Callable[[], Monitor]:
        def build() -> Monitor:
            env = ZoomEnv(
                (list(tables), None),
                level,
                reward=reward,
                observation=observation,
                rate=rate,
                zoom=zoom,
                episode_length=settings.episode_length,
                sampling=settings.sampling,
                unit_area=unit_area,
                inputs=inputs,
                decide_first=decide_first,
            )
            env.reset(seed=seed + index)
            return Monitor(env)

        return build

    vec = DummyVecEnv([make(i) for i in range(settings.n_envs)])
    vec.seed(seed)
    stats = policy_view(tables[level].observations, inputs)["stats"]
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
        model.learn(settings.timesteps, callback=[ZoomStatsCallback(), *callbacks])
    finally:
        torch.set_num_threads(threads)
    return model


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


def save_level(
    model: Any,
    path: Path,
    report: LevelReport,
    observation: Any,
    num_classes: int,
    settings: PolicyTrainConfig,
    reward: RewardConfig,
    inputs: str | None = None,
) -> None:
    """Write the policy (safetensors) and its report (JSON beside it); ``inputs`` is what it
    sees (default ``settings.inputs``)."""
    extra = {"level": report.level, "lam": reward.lam, "policy_cost": reward.policy_cost}
    inputs = settings.inputs if inputs is None else inputs
    save_policy(model.policy, path, observation, num_classes, settings.net, extra, inputs)
    save_report(path, report, reward)


def save_report(path: Path, report: LevelReport, reward: RewardConfig) -> None:
    """Write the level's report as JSON beside its policy file ``path``."""
    extra = {"level": report.level, "lam": reward.lam, "policy_cost": reward.policy_cost}
    report_path = path.with_suffix(".json")
    report_path.write_text(json.dumps({**extra, **report.as_dict()}, indent=2), encoding="utf-8")


def policy_config(
    run: Any, config_path: Path | None, overrides: Sequence[str] = (), lam: float | None = None
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
    run: Any,
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
    if reuse and _policy_files_ready(folder, run.num_levels, config):
        ensure_validation_cost(run, config, folder, progress)
        return _saved_reports(folder, run.num_levels)
    tables, _ = read_tables(build_reward_cache(run, config, progress))
    reports, _, policies = _train_levels(run, config, tables, progress, held_out_splits, folder)
    record_validation_cost(run, config, policies, folder, progress)
    return reports


VALIDATION_SPLITS = ("val",)
"""The slides whose cached trees price a λ's policies for ``--budget`` (never test)."""


def ensure_validation_cost(run: Any, config: RunConfig, folder: Path, progress: bool) -> None:
    """:func:`record_validation_cost` for the saved policies in ``folder``, unless done."""
    if read_validation(folder) is None:
        policies = load_policies(folder, run.num_levels)
        record_validation_cost(run, config, policies, folder, progress)


def record_validation_cost(
    run: Any, config: RunConfig, policies: Mapping[int, Any], folder: Path, progress: bool
) -> None:
    """Write what ``policies`` cost on the val slides' cached trees to ``folder``
    (:mod:`razn.policy.budget`); nothing when the manifest has no val slides."""
    manifest = check_manifest(config)
    if not any(manifest.split(name) for name in VALIDATION_SPLITS):
        return
    tables, _ = read_tables(build_reward_cache(run, config, progress, VALIDATION_SPLITS))
    decision_levels = range(len(tables) - 1)
    zoom = {j: policy_decisions(policies[j], tables[j].observations) > 0.5 for j in decision_levels}
    tissue = [tables[j].observations["stats"][..., TISSUE_STAT] > 0 for j in decision_levels]
    rate = config.levels.geometry().rate
    cost = validation_cost(zoom, tissue, rate, config.reward.lam, VALIDATION_SPLITS)
    write_validation(folder, cost)


def _train_levels(
    run: Any,
    config: RunConfig,
    tables: Sequence[Any],
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
    reports = []
    for level in range(geometry.finest_level - 1, -1, -1):
        bar = [TqdmCallback(settings.timesteps, f"policy level {level}")] if progress else []
        model = train_level(
            tables,
            level,
            zoom,
            settings,
            reward,
            config.observation,
            geometry.rate,
            (config.seed if settings.seed is None else settings.seed) + level,
            folder / f"level_{level}_log",
            bar,
            unit_area=config.reward_unit_area,
            inputs=config.level_inputs(level),
            decide_first=config.decide_first,
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
        )
        report = level_report(level, probabilities, rewards)
        if held_out is not None:
            comparison = judge_held_out(model.policy, held_out, level, held_out_zoom, config)
            report = replace(report, held_out=comparison.as_dict())
        save_level(
            model,
            policy_path(folder, level),
            report,
            config.observation,
            config.data.num_classes,
            settings,
            reward,
            config.level_inputs(level),
        )
        record_digest(policy_path(folder, level))
        zoom[level] = probabilities > 0.5
        policies[level] = model.policy
        reports.append(report)
    return reports, zoom, policies


def _policy_files_ready(folder: Path, num_levels: int, config: RunConfig) -> bool:
    """Saved, verified policies with their reports, trained with ``config``: reusable."""
    return _policies_verified(folder, num_levels, with_reports=True) and trained_with(
        folder, config
    )


def _policies_verified(folder: Path, num_levels: int, with_reports: bool = False) -> bool:
    """Every g_i's file (and report) is in ``folder`` with the SHA-256 razn recorded."""
    paths = [policy_path(folder, level) for level in range(num_levels - 1)]
    wanted = paths + ([path.with_suffix(".json") for path in paths] if with_reports else [])
    if not all(path.is_file() for path in wanted):
        return False
    try:
        for path in paths:
            verify_digest(path)
    except RaznError:  # unverifiable or changed files are trained again
        return False
    return True


def _saved_reports(folder: Path, num_levels: int) -> list[LevelReport]:
    """The reports written beside saved policies, finest decision level first."""
    names = {f.name for f in fields(LevelReport)}
    reports = []
    for level in range(num_levels - 2, -1, -1):
        saved = json.loads(policy_path(folder, level).with_suffix(".json").read_text("utf-8"))
        reports.append(LevelReport(**{k: v for k, v in saved.items() if k in names}))
    return reports


def judge_held_out(
    policy: Any, tables: Sequence[Any], level: int, zoom: dict[int, np.ndarray], config: RunConfig
) -> HeldOutComparison:
    """Compare ``policy`` (g_``level``) with the baselines on held-out cached ``tables``;
    records its decisions in ``zoom`` for the level above."""
    observations = tables[level].observations
    probabilities = policy_decisions(policy, observations)
    rate = config.levels.geometry().rate
    rewards = zoom_rewards(
        tables, level, rate, zoom, config.reward, config.reward_unit_area, config.decide_first
    )
    stats = observations["stats"]
    zoom[level] = probabilities > 0.5
    return compare_level(
        level, probabilities, rewards, stats[..., ENTROPY_STAT], stats[..., TISSUE_STAT] > 0
    )


def policies_exist(
    run: Any, lam: float, seed: int | None = None, config: RunConfig | None = None
) -> bool:
    """True when every g_i of ``run`` for λ = ``lam`` (and PPO ``seed``) has been saved (with
    the SHA-256 razn recorded for it) and, if ``config`` is given, was trained with its
    ``policy`` and ``reward`` sections."""
    folder = policy_folder(run.policies_dir, lam, seed)
    if not _policies_verified(folder, run.num_levels):
        return False
    return config is None or trained_with(folder, config)


PPO_SECTIONS = ("policy", "reward")
"""The config sections PPO training depends on."""


def trained_with(folder: Path, config: RunConfig) -> bool:
    """Whether the policies in ``folder`` were trained with ``config``'s policy sections."""
    try:
        saved = load_config(RunConfig, folder / "config.yaml")
    except (RaznError, OSError):
        return False
    return all(getattr(saved, name) == getattr(config, name) for name in PPO_SECTIONS)


def build_reward_cache(
    run: Any, config: RunConfig, progress: bool = False, splits: Sequence[str] | None = None
) -> list[Path]:
    """The reward caches of the slides in ``splits`` (default ``policy.splits``), built or
    reused, one per slide."""
    splits = tuple(config.policy.splits if splits is None else splits)
    manifest = check_manifest(config)
    entries = [e for e in manifest.entries if e.split in splits]
    if not entries:
        raise RaznError(f"no slides in splits {list(splits)}", manifest.path)
    seg_paths = [run.segmenter_path(level) for level in range(run.num_levels)]
    run.cache_dir.mkdir(parents=True, exist_ok=True)
    loaded: list[Any] = []

    def segmenters() -> list[Any]:  # loaded once, and only if a cache must be built
        if not loaded:
            loaded.extend(run.load_segmenters())
        return loaded

    mode = progress_mode(quiet=not progress)
    description = f"reward caches of the {'/'.join(splits)} slides"
    return [
        ensure_slide_cache(e.slide, _mask(e), segmenters, seg_paths, config, run.cache_dir, mode)
        for e in tracked(entries, description, mode, unit="slide")
    ]


def _mask(entry: ManifestEntry) -> Path:
    if entry.mask is None:
        raise MaskError(f"slide {entry.slide} has no mask; the reward cache needs one", entry.slide)
    return entry.mask
