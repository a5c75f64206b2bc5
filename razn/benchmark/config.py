"""What ``razn benchmark`` measures: the dataset, the run, the λ sweep, the seeds and the modes.

Loaded from ``configs/benchmark.yaml``; paths inside it are relative to that file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from razn.config import check_range
from razn.data.synth import SynthConfig
from razn.errors import ConfigError

BENCHMARK_MODES = ("razn", "ud", "cip", "fixed", "uncertainty", "random", "oracle")
"""``fixed`` stands for ``fixed-i`` at every working level between ``ud`` and ``cip``."""


@dataclass(frozen=True)
class DatasetSpec:
    """The synthetic benchmark: ``slides`` slides of ``size`` from ``seed``, split by ``synth``."""

    slides: int = 12
    size: tuple[int, int] = (8192, 8192)
    """Level-0 ``(width, height)`` of every slide (px)."""
    seed: int = 2026
    synth: SynthConfig = field(default_factory=SynthConfig)
    """Generator settings, including the train/val/test fractions."""

    def __post_init__(self) -> None:
        check_range("dataset.slides", self.slides, low=3)
        check_range("dataset.size[0]", self.size[0], low=64)
        check_range("dataset.size[1]", self.size[1], low=64)
        check_range("dataset.seed", self.seed, low=0)


@dataclass(frozen=True)
class BenchmarkConfig:
    """One benchmark: every mode of ``docs/method.md`` on the held-out test slides."""

    name: str = "benchmark"
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    manifest: str | None = None
    """Your own dataset instead of the synthetic one: a ``slide,mask,split`` CSV (relative to
    the benchmark YAML) with train, ``match_split`` and test slides. ``dataset`` is then
    unused, and so is ``label_noise_um`` (it jitters the synthetic generator's masks)."""
    run_config: str = "default.yaml"
    """The RunConfig YAML of the trained run (relative to the benchmark YAML)."""
    run_overrides: tuple[str, ...] = ()
    """``key=value`` overrides of the run config (``data.manifest`` is set by the benchmark)."""
    lambdas: tuple[float, ...] = (0.0025, 0.005, 0.01, 0.02, 0.04)
    """λ values of the razn curve."""
    select_lambda: bool = True
    """Choose the default λ on the ``match_split`` slides: the largest λ of ``lambdas`` whose
    razn Dice there is at least ``lambda_dice_ratio`` × cip's (the smallest λ if none is).
    False: the run's ``reward.lam`` is the default λ (added to the sweep if missing)."""
    lambda_dice_ratio: float = 0.98
    """Share of cip's Dice the default λ must keep on the ``match_split`` slides."""
    select_over_seeds: bool = True
    """The default λ must keep ``lambda_dice_ratio`` × cip's Dice in the mean over ``seeds``
    too, not only for the sweep's policies: candidates are checked largest first, the other
    seeds' policies trained at each (the chosen λ's are the ones the benchmark reports)."""
    lambda_refine_steps: int = 2
    """Bisection steps between the chosen λ and the next λ of the sweep, which missed the
    rule: each trains the policies at their geometric mean (3 significant digits) and keeps
    it when it holds the rule too, so the default λ is not held back by the sweep's spacing.
    The λs tried join the razn and oracle curves. 0: the sweep's λs only."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Policy training seeds at the default λ; ``uncertainty`` and ``random`` are matched to each."""
    modes: tuple[str, ...] = BENCHMARK_MODES
    match_split: str = "val"
    """Split whose slides set the matched thresholds of ``uncertainty`` and ``random``
    (never the test split: nothing is tuned on the slides that are scored)."""
    match_test_compute: bool = True
    """Also match ``uncertainty`` and ``random`` to razn's patches on the test slides, from
    their images alone (f_i's entropy and razn's decisions on the cached trees; never the
    masks): val-matched settings need not spend razn's compute there. The matched target
    is judged on these rows when they exist."""
    label_noise_um: float = 8.0
    """Mask-border jitter (µm) of a second run trained on noisy labels; 0 skips it."""
    evaluation_downsample: float = 2.0
    """Resolution (level-0 px per pixel) at which every mode is scored."""
    workers: int = 2
    """Processes that train levels, caches and policies side by side (one thread each)."""
    segment_threads: int = 0
    """Torch threads while segmenting the test slides (0: torch's default, one per core).
    Slides are segmented one at a time, so every mode is timed alike."""
    device: str = "auto"
    """Where segmentation runs when timed: ``auto``, ``cpu``, ``cuda``."""
    timing_repeats: int = 3
    """Times each test segmentation is run; a slide's seconds are the median of its runs.
    The repeats go in rounds over all modes, each round in another order, after one
    untimed warm-up pass of cip over the test slides (page cache, kernels, threads), so
    that no mode pays for being first and drift on the machine falls on every mode alike."""

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in BENCHMARK_MODES]
        if unknown:
            raise ConfigError(f"unknown benchmark modes {unknown}; choose from {BENCHMARK_MODES}")
        if not self.lambdas:
            raise ConfigError("lambdas must list at least one λ")
        for lam in self.lambdas:
            check_range("lambdas[]", lam, low=0)
        if not self.seeds:
            raise ConfigError("seeds must list at least one seed")
        if self.match_split == "test":
            raise ConfigError("match_split must not be test: nothing is tuned on the test slides")
        check_range("lambda_dice_ratio", self.lambda_dice_ratio, low=0, high=1)
        check_range("lambda_refine_steps", self.lambda_refine_steps, low=0)
        check_range("label_noise_um", self.label_noise_um, low=0)
        check_range("evaluation_downsample", self.evaluation_downsample, low=1)
        check_range("workers", self.workers, low=1)
        check_range("segment_threads", self.segment_threads, low=0)
        check_range("timing_repeats", self.timing_repeats, low=1)

    def manifest_path(self, benchmark_yaml: Path | None) -> Path | None:
        """The user's manifest, resolved against the benchmark YAML's folder; None: synthetic."""
        if self.manifest is None:
            return None
        base = Path(benchmark_yaml).parent if benchmark_yaml is not None else Path.cwd()
        return (base / self.manifest).resolve()

    def run_config_path(self, benchmark_yaml: Path | None) -> Path:
        base = Path(benchmark_yaml).parent if benchmark_yaml is not None else Path("configs")
        return (base / self.run_config).resolve()
