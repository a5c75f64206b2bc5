"""The reward caches a run's policies train and are priced on, built or reused per slide."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envs.reward_cache import ensure_slide_cache
from razn.data.manifest import ManifestEntry
from razn.engine.progress import progress_mode, tracked
from razn.errors import MaskError, RaznError
from razn.run_config import RunConfig
from razn.run_dir import RunDirectory
from razn.train.setup import check_manifest


def build_reward_cache(
    run: RunDirectory,
    config: RunConfig,
    progress: bool = False,
    splits: Sequence[str] | None = None,
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
