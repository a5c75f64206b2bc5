"""What an engine is made of, as plain picklable values: built anew in each process.

``razn segment`` describes its engine once as an :class:`EngineSpec`; the process that
segments (this one, or a Dask worker) builds the engine from it, loading the run's
safetensors weights itself. No network or policy object is ever pickled.
"""

from __future__ import annotations

import functools
from dataclasses import KW_ONLY, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from razn.engine.zoom import EngineConfig, ZoomEngine
from razn.errors import ConfigError

if TYPE_CHECKING:
    from razn.policy.budget import ValidationCost
    from razn.run_config import RunConfig


@dataclass(frozen=True)
class EngineSpec:
    """A segmentation engine: the run, the mode and its parameters, and how to run it."""

    run: Path
    """Run directory with the trained segmenters (and policies for mode razn)."""
    _: KW_ONLY  # the rest by name: three of them are ``float | None`` side by side
    mode: str = "razn"
    lam: float | None = None
    """λ of the policies; None: the run's own."""
    threshold: float | tuple[float, ...] | None = None
    """Mode uncertainty: one entropy threshold, or one per decision level."""
    zoom_probability: float | tuple[float, ...] | None = None
    """Mode random: one zoom probability, or one per decision level."""
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 16
    overlap: int = 0
    """Overlap-tile margin in px (:attr:`razn.engine.zoom.EngineConfig.overlap`)."""
    backend: str = "torch"
    """Inference backend of the segmenters (:data:`razn.models.backends.BACKENDS`)."""
    output_downsample: float | None = None
    budget: float | None = None
    """Mode razn: at most this share of cip's patches, mapped to λ by the run's validation
    curve (:mod:`razn.policy.budget`); excludes ``lam``."""
    tissue_method: str | None = None
    """Tissue detection measure instead of the run's (``saturation``, ``darkness``,
    ``fluorescence``): slides of another stain than the training ones need their own."""
    tissue_threshold: float | None = None
    """A fixed tissue threshold (0–255) instead of the run's (None: the run's setting)."""

    def build(self) -> ZoomEngine:
        """Load the run's networks onto the device and make the engine."""
        from razn.engine.modes import make_decider
        from razn.models import select_device
        from razn.models.backends import check_backend, openvino_predictor
        from razn.run_dir import RunDirectory

        device = select_device(self.device)  # first: a missing GPU fails before any loading
        run = RunDirectory.open(self.run)
        lam = self.resolved_lambda(run.config.reward.lam, run.policies_dir)
        segmenters = [model.to(device) for model in run.load_segmenters()]
        decider = make_decider(
            self.mode,
            run.num_levels,
            policies_dir=run.policies_dir,
            lam=lam,
            threshold=self.threshold,
            zoom_probability=self.zoom_probability,
            seed=self.seed,
        )
        config = EngineConfig(
            batch_size=self.batch_size,
            output_downsample=self.output_downsample,
            device=str(device),
            precision=self.precision,
            count_cip_patches=self.budget is not None,
            overlap=self.overlap,
        )
        predictors = None
        check_backend(self.backend, device)
        if self.backend == "openvino":
            levels = run.config.levels
            sides = [  # what f_i is given: the patch and its context margins
                levels.patch_size + 2 * max(levels.margin(level), self.overlap)
                for level in range(len(segmenters))
            ]
            predictors = [
                openvino_predictor(
                    model, run.segmenter_path(level), sides[level], self.batch_size, self.precision
                )
                for level, model in enumerate(segmenters)
            ]
        return ZoomEngine(segmenters, decider, self.run_config(run.config), config, predictors)

    def run_config(self, config: RunConfig) -> RunConfig:
        """The run's config with this spec's tissue detection settings."""
        tissue = config.tissue
        if self.tissue_method is not None:
            tissue = replace(tissue, method=self.tissue_method)  # type: ignore[arg-type]
        if self.tissue_threshold is not None:
            tissue = replace(tissue, threshold=float(self.tissue_threshold))
        return replace(config, tissue=tissue)

    def resolved_lambda(self, run_lambda: float, policies_dir: Path | None = None) -> float:
        """λ of the policies: ``lam``, the budget's (from ``policies_dir``), or the run's."""
        if self.budget is not None:
            if self.lam is not None:
                raise ConfigError("give --lambda or --budget, not both")
            if policies_dir is None:
                raise ConfigError("--budget needs the run's policies")
            return budget_choice(policies_dir, self.budget).lam
        return run_lambda if self.lam is None else self.lam

    def summary_extra(self, engine: ZoomEngine) -> dict[str, Any]:
        """What ``summary.json`` records of this spec beyond the engine's own results."""
        policies_dir = Path(self.run) / "policies"
        extra: dict[str, Any] = {
            "lambda": self.resolved_lambda(engine.config.reward.lam, policies_dir)
            if self.mode == "razn"
            else None,
            "run": str(Path(self.run).resolve()),
            "backend": self.backend,
            "overlap": self.overlap,
            # what segmentation depends on beyond the run: --resume redoes other settings
            "tissue": {
                "method": engine.config.tissue.method,
                "threshold": engine.config.tissue.threshold,
            },
        }
        if self.budget is not None and self.mode == "razn":
            choice = budget_choice(policies_dir, self.budget)
            extra["budget"] = {
                "requested": self.budget,
                "lambda": choice.lam,
                "validation_share": choice.share,
            }
        if self.mode == "uncertainty":
            extra["threshold"] = _json_value(self.threshold)
        if self.mode == "random":
            extra.update(zoom_probability=_json_value(self.zoom_probability), seed=self.seed)
        return extra


def _json_value(value: float | tuple[float, ...] | None) -> float | list[float] | None:
    """A per-level tuple as the list JSON reads back (``--resume`` compares them)."""
    return list(value) if isinstance(value, tuple) else value


def budget_choice(policies_dir: Path, budget: float) -> ValidationCost:
    """The trained λ (and its validation cost) for ``budget`` × cip's patches."""
    from razn.policy.budget import lambda_for_budget

    return lambda_for_budget(policies_dir, budget)


@functools.lru_cache(maxsize=2)
def cached_engine(spec: EngineSpec) -> ZoomEngine:
    """The engine of ``spec``, built once per process (a Dask worker keeps its engine)."""
    return spec.build()
