"""Saved policy sets: writing one level, and whether a folder's set can be reused."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from razn.config import load_config
from razn.errors import RaznError
from razn.policy.store import (
    policy_folder,
    policy_path,
    refine_path,
    save_policy,
    verify_digest,
)
from razn.run_config import RunConfig
from razn.run_dir import RunDirectory
from razn.train.policy_reports import LevelReport, save_report

PPO_SECTIONS = ("policy", "reward")
"""The config sections PPO training depends on."""


def save_level(
    policy: Any, path: Path, report: LevelReport, config: RunConfig, inputs: str | None = None
) -> None:
    """Write g_``report.level`` (or h_i: an SB3 actor-critic policy, safetensors) and its
    report (JSON beside it), with what it sees (default: what g_i sees) and the reward it
    was trained for."""
    reward, settings = config.reward, config.policy
    extra = {"level": report.level, "lam": reward.lam, "policy_cost": reward.policy_cost}
    inputs = inputs or config.level_inputs(report.level)
    save_policy(
        policy,
        path,
        config.observation,
        config.data.num_classes,
        settings.net,
        extra,
        inputs,
    )
    save_report(path, report, reward)


def policy_files_ready(folder: Path, num_levels: int, config: RunConfig) -> bool:
    """Saved, verified policies with their reports, trained with ``config``: reusable."""
    return policies_verified(
        folder, num_levels, with_reports=True, refine_levels=config.refine_levels
    ) and trained_with(folder, config)


def policies_verified(
    folder: Path,
    num_levels: int,
    with_reports: bool = False,
    refine_levels: Iterable[int] = (),
) -> bool:
    """Every g_i's file (and h_i's of the ``refine_levels``; and their reports) is in
    ``folder`` with the SHA-256 razn recorded."""
    paths = [policy_path(folder, level) for level in range(num_levels - 1)]
    paths += [refine_path(folder, level) for level in sorted(refine_levels)]
    wanted = paths + ([path.with_suffix(".json") for path in paths] if with_reports else [])
    if not all(path.is_file() for path in wanted):
        return False
    try:
        for path in paths:
            verify_digest(path)
    except RaznError:  # unverifiable or changed files are trained again
        return False
    return True


def policies_exist(
    run: RunDirectory, lam: float, seed: int | None = None, config: RunConfig | None = None
) -> bool:
    """True when every g_i of ``run`` for λ = ``lam`` (and PPO ``seed``) has been saved (with
    the SHA-256 razn recorded for it) and, if ``config`` is given, was trained with its
    ``policy`` and ``reward`` sections."""
    folder = policy_folder(run.policies_dir, lam, seed)
    refine = config.refine_levels if config is not None else ()
    if not policies_verified(folder, run.num_levels, refine_levels=refine):
        return False
    return config is None or trained_with(folder, config)


def trained_with(folder: Path, config: RunConfig) -> bool:
    """Whether the policies in ``folder`` were trained with ``config``'s policy sections."""
    try:
        saved = load_config(RunConfig, folder / "config.yaml")
    except (RaznError, OSError):
        return False
    return all(getattr(saved, name) == getattr(config, name) for name in PPO_SECTIONS)
