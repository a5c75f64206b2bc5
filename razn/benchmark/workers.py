"""Training tasks run side by side in worker processes, one torch thread each.

Each task opens the run directory by path (nothing heavy crosses a process border)
and is idempotent: finished levels, caches and policies are reused, so a benchmark
that was interrupted continues where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

ORPHAN_CHECK_SECONDS = 1.0
"""How often a worker checks that the process that started it is still there."""


def _worker_start(parent: int) -> None:
    """Every worker: one torch thread, and an end once it is orphaned."""
    from razn.heavy_imports import import_network_stack

    import_network_stack(policies=True)  # every task type needs a part of it
    import torch

    torch.set_num_threads(1)
    watch = threading.Thread(
        target=_exit_when_orphaned, args=(parent,), name="razn-orphan-watch", daemon=True
    )
    watch.start()


def _exit_when_orphaned(parent: int) -> None:
    """End this worker once ``parent`` is gone. A benchmark killed by a signal it cannot
    catch (a scheduler's SIGKILL, ``kill -9``) leaves its pool behind; the workers would
    go on training into the run folder, racing a resumed benchmark for the same files."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)


def run_tasks(
    function: Callable[..., Any],
    tasks: Sequence[tuple[Any, ...]],
    workers: int,
    on_done: Callable[[tuple[Any, ...], Any], None] | None = None,
) -> list[Any]:
    """``function(*task)`` for every task, ``workers`` at a time; results in task order.

    With one worker (or one task) everything runs in this process. Worker processes are
    spawned, never forked, so no torch thread pool is inherited half-initialised, and end
    by themselves when this process is killed (:func:`_exit_when_orphaned`).
    """
    if workers <= 1 or len(tasks) <= 1:
        results: list[Any] = []
        for task in tasks:
            results.append(function(*task))
            if on_done is not None:
                on_done(task, results[-1])
        return results
    context = multiprocessing.get_context("spawn")
    results = [None] * len(tasks)
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_start, initargs=(os.getpid(),)
    )
    with pool:
        futures = {pool.submit(function, *task): i for i, task in enumerate(tasks)}
        for future in as_completed(futures):
            index = futures[future]
            results[index] = future.result()
            if on_done is not None:
                on_done(tasks[index], results[index])
    return results


def train_segmenter_level(run_path: str, level: int) -> tuple[float, ...]:
    """Train (or reuse) f_``level`` of the run; returns its validation Dice per class."""
    from razn.run_dir import RunDirectory
    from razn.train.segmentation import train_level

    result = train_level(RunDirectory.open(run_path), level, progress=False)
    return result.val_dice


def build_slide_cache(run_path: str, slide: str, mask: str) -> str:
    """The reward cache of one slide for the run (built or reused); returns its path."""
    from envs.reward_cache import ensure_slide_cache
    from razn.run_dir import RunDirectory

    run = RunDirectory.open(run_path)
    paths = [run.segmenter_path(level) for level in range(run.num_levels)]
    run.cache_dir.mkdir(parents=True, exist_ok=True)
    path = ensure_slide_cache(
        Path(slide), Path(mask), run.load_segmenters, paths, run.config, run.cache_dir
    )
    return str(path)


def train_policy_set(
    run_path: str,
    lam: float,
    seed: int | None,
    config: dict[str, Any] | None = None,
    held_out: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Train (or reuse) g_0 … g_{m−1} of the run for λ = ``lam`` and PPO ``seed``, with the
    ``policy`` and ``reward`` sections of ``config`` (a RunConfig as a dict; default the run's
    own), judging each level on the ``held_out`` splits' slides."""
    from razn.config import from_mapping
    from razn.run_config import RunConfig
    from razn.run_dir import RunDirectory
    from razn.train.policy import train_policies

    run = RunDirectory.open(run_path)
    base = run.config if config is None else from_mapping(RunConfig, config, run_path)
    wanted = policy_set_config(
        replace(run.config, policy=base.policy, reward=base.reward), lam, seed
    )
    reports = train_policies(run, wanted, False, held_out, reuse=True)
    return [report.as_dict() for report in reports]


def policy_set_config(config: Any, lam: float, seed: int | None) -> Any:
    """``config`` (a RunConfig) with λ = ``lam`` and PPO ``seed``."""
    return replace(
        config,
        reward=replace(config.reward, lam=float(lam)),
        policy=replace(config.policy, seed=seed),
    )


def slide_pairs(entries: Iterable[Any]) -> list[tuple[str, str]]:
    """``(slide, mask)`` path strings of manifest entries."""
    return [(str(e.slide), str(e.mask)) for e in entries]
