"""What the benchmark's steps share: the job of one mode, the context, and how a job's
outputs are keyed and its oracle built (kept apart from :mod:`razn.benchmark.runner` so that
:mod:`razn.benchmark.segment` can use them without importing the runner back)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from razn.benchmark.config import BenchmarkConfig
from razn.benchmark.workers import build_slide_cache
from razn.data.manifest import Manifest, ManifestEntry
from razn.digest import file_sha256
from razn.engine.deciders import Decider, RandomZoom, UncertaintyThreshold
from razn.engine.modes import make_decider
from razn.rewards import oracle_plan
from razn.run_config import RunConfig
from razn.run_dir import RunDirectory

Say = Callable[[str], None]


@dataclass
class Job:
    """One way of segmenting the test slides: a mode and its parameters."""

    variant: str
    """``clean`` or ``noisy`` (the run trained on jittered labels)."""
    mode: str
    lam: float | None = None
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """Folder name of this job's outputs."""
        parts = [self.mode]
        if self.lam is not None:
            parts.append(f"lam{self.lam:g}")
        if self.seed is not None:
            parts.append(f"seed{self.seed}")
        if self.params.get("matched_on") == "test":  # beside the val-matched job of its seed
            parts.append("testcompute")
        return "_".join(parts)


@dataclass
class Context:
    """Everything the steps share."""

    config: BenchmarkConfig
    out: Path
    say: Say
    progress: bool
    started: float = field(default_factory=time.perf_counter)
    runs: dict[str, RunDirectory] = field(default_factory=dict)
    configs: dict[str, RunConfig] = field(default_factory=dict)
    """Each run's wanted config: the policies are trained with its policy sections."""
    manifests: dict[str, Manifest] = field(default_factory=dict)
    selected_lambda: float | None = None
    """The default λ chosen on the ``match_split`` slides (``select_lambda``)."""
    refined_lambdas: list[float] = field(default_factory=list)
    """λs the default λ's bisection trained beyond the sweep (they join the curves)."""

    def log(self, message: str) -> None:
        self.say(f"[{time.perf_counter() - self.started:6.0f} s] {message}")

    @property
    def clean(self) -> RunDirectory:
        return self.runs["clean"]

    @property
    def default_lambda(self) -> float:
        if self.config.select_lambda:
            if self.selected_lambda is None:
                raise RuntimeError("the default λ is chosen on the val slides after the sweep")
            return self.selected_lambda
        return self.clean.config.reward.lam

    def policy_seed(self, seed: int) -> int | None:
        """The ``policy.seed`` of a training seed: None for the run's own seed."""
        return None if seed == self.clean.config.seed else seed


def cache_path(run: RunDirectory, entry: ManifestEntry) -> Path:
    """The (already built) reward cache of one slide."""
    return Path(build_slide_cache(str(run.path), str(entry.slide), str(entry.mask)))


def oracle_decider(run: RunDirectory, entry: ManifestEntry, lam: float) -> Any:
    """The oracle of one test slide: its cached ground-truth rewards at λ = ``lam``."""
    from envs.reward_cache import read_tables
    from envs.zoom import cached_refinement, cached_tissue
    from razn.engine.deciders import PlannedZoom

    tables, roots = read_tables([cache_path(run, entry)])
    rate = run.config.levels.geometry().rate
    errors, area = [t.errors for t in tables], [t.area for t in tables]
    reward = replace(run.config.reward, lam=float(lam))
    plan = oracle_plan(
        errors,
        area,
        reward,
        rate,
        run.config.reward_unit_area,
        run.config.decide_first,
        cached_refinement(tables, run.config.refine_levels),
        cached_tissue(tables),
    )
    return PlannedZoom(roots[0], plan.zoom, rate, refine=plan.refine)


def job_key(run: RunDirectory, job: Job, evaluation: dict[str, Any]) -> str:
    """A hash of everything that decides a job's outputs (reused only when unchanged)."""
    policy_files: list[str] = []
    if job.mode == "razn":
        from razn.policy.store import policy_folder

        folder = policy_folder(run.policies_dir, job.lam or 0.0, job.seed)
        policy_files = [
            file_sha256(p)
            for pattern in ("level_*.safetensors", "refine_*.safetensors")
            for p in sorted(folder.glob(pattern))
        ]
    blob = {
        "segmenters": run.info["segmenters"],
        "mode": job.mode,
        "lam": job.lam,
        "seed": job.seed,
        "params": job.params,
        "policies": policy_files,
        "levels": run.config.levels.downsamples,
        # the oracle's plan depends on which levels refine
        "refine_levels": sorted(run.config.refine_levels) if job.mode == "oracle" else None,
        **evaluation,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:20]


def job_decider(run: RunDirectory, job: Job, entry: ManifestEntry) -> Decider:
    """The decider of ``job`` (the oracle's depends on the slide)."""
    levels = run.num_levels
    if job.mode == "uncertainty":
        return UncertaintyThreshold(list(job.params["thresholds"]))
    if job.mode == "random":
        return RandomZoom(list(job.params["probabilities"]), seed=job.seed or 0)
    if job.mode == "oracle":
        return oracle_decider(run, entry, job.lam if job.lam is not None else run.config.reward.lam)
    return make_decider(
        job.mode, levels, policies_dir=run.policies_dir, lam=job.lam, policy_seed=job.seed
    )
