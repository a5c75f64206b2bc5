"""The configuration of a razn run: one typed tree, loaded from ``configs/*.yaml``.

Every section is a frozen dataclass owned by the module that uses it; this module
only gathers them. The resolved config is written into each run directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from razn.config import check_range, load_config
from razn.errors import ConfigError
from razn.geometry import ZoomGeometry, check_margin
from razn.models.factory import SegmenterConfig
from razn.observation import ObservationConfig
from razn.rewards import RewardConfig
from razn.slide.tissue import TissueConfig
from razn.training_config import PolicyTrainConfig, SegTrainConfig


@dataclass(frozen=True)
class LevelsConfig:
    """The working levels of the zoom hierarchy."""

    downsamples: tuple[float, ...] = (8.0, 4.0, 2.0, 1.0)
    """Working downsamples relative to level 0, coarsest first, one integer rate apart."""
    patch_size: int = 256
    """Patch side in pixels at every working level."""
    context: tuple[int, ...] = ()
    """Context margin in px per working level, coarsest first (empty: none anywhere). f_i
    is trained and run on patches read with this much more of the slide on every side,
    and only their centre ``P × P`` is scored and kept, so a fine level sees e.g. a duct's
    rim beyond its patch. It costs ``((P + 2·c) / P)²`` of f_i's time."""

    def __post_init__(self) -> None:
        geometry = self.geometry()  # validates
        if self.context and len(self.context) != geometry.num_levels:
            raise ConfigError(
                f"levels.context has {len(self.context)} margins for {geometry.num_levels} "
                "working levels; give one per level (or none)"
            )

    def margin(self, level: int) -> int:
        """The context margin of working level ``level`` (px on every side)."""
        return int(self.context[level]) if self.context else 0

    def geometry(self) -> ZoomGeometry:
        return ZoomGeometry(self.downsamples, self.patch_size)


@dataclass(frozen=True)
class DataConfig:
    """The dataset and its classes."""

    manifest: Path | None = None
    """The dataset manifest CSV (``slide,mask,split``); relative paths are from the working directory."""
    class_names: tuple[str, ...] = ("background", "tumour")
    """Name of every class value 0…K−1 in the masks (255 is ignore)."""
    class_colours: tuple[tuple[int, int, int], ...] | None = None
    """RGB (0–255) of every class value, as the outputs draw them (OME-Zarr label colours,
    GeoJSON classifications, overlay); None: razn's palette."""

    def __post_init__(self) -> None:
        check_range("data.class_names (count)", len(self.class_names), 2, 254)
        if self.class_colours is not None:
            if len(self.class_colours) != len(self.class_names):
                raise ConfigError(
                    f"data.class_colours has {len(self.class_colours)} colours for "
                    f"{len(self.class_names)} class names; give one per class"
                )
            for value, colour in enumerate(self.class_colours):
                if not all(0 <= c <= 255 for c in colour):
                    raise ConfigError(
                        f"data.class_colours[{value}] must be 3 integers 0-255, got {list(colour)}"
                    )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class EvaluationConfig:
    """Where errors are counted."""

    downsample: float | None = None
    """Evaluation resolution (level-0 px per pixel); None means the finest working level."""


@dataclass(frozen=True)
class RunConfig:
    """Everything a razn run needs; sections are documented in their own classes."""

    name: str = "razn"
    """Run name, used for the run directory when none is given."""
    seed: int = 0
    """Seed of every random choice in the run."""
    levels: LevelsConfig = field(default_factory=LevelsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tissue: TissueConfig = field(default_factory=TissueConfig)
    model: SegmenterConfig = field(default_factory=SegmenterConfig)
    observation: ObservationConfig = field(default_factory=ObservationConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    seg_train: SegTrainConfig = field(default_factory=SegTrainConfig)
    policy: PolicyTrainConfig = field(default_factory=PolicyTrainConfig)

    RETIRED_KEYS: ClassVar[Mapping[str, str]] = {
        "gate": "the image-only gates of razn 0.1, replaced by image-first policies (policy.inputs)"
    }
    """Sections older configs may hold that are read and ignored (run directories of earlier
    versions stay usable)."""

    def __post_init__(self) -> None:
        decisions = self.levels.geometry().finest_level
        for key in ("informed_levels", "refine_levels"):
            for level in getattr(self.policy, key):
                if not -decisions <= level < decisions:
                    raise ConfigError(
                        f"policy.{key}: {level} is not a decision level (0..{decisions - 1}, "
                        f"or -1 for the last) of {decisions + 1} working levels"
                    )
        rate = self.levels.geometry().rate
        if self.policy.refine_levels and self.levels.patch_size % rate:
            raise ConfigError(
                f"policy.refine_levels needs patches that split into {rate} × {rate} quadrants; "
                f"levels.patch_size {self.levels.patch_size} does not"
            )
        for level, margin in enumerate(self.levels.context):
            check_margin(
                margin, self.levels.patch_size, self.model.encoder_depth,
                f"levels.context[{level}]",
            )  # fmt: skip
        finest = self.levels.downsamples[-1]
        eval_ds = self.evaluation.downsample
        if eval_ds is not None and not any(
            abs(eval_ds - d) < 1e-9 for d in self.levels.downsamples
        ):
            raise ConfigError(
                f"evaluation.downsample {eval_ds} must be one of the working downsamples "
                f"{list(self.levels.downsamples)} (default: the finest, {finest})"
            )

    @property
    def eval_downsample(self) -> float:
        return self.evaluation.downsample or self.levels.downsamples[-1]

    def level_inputs(self, level: int) -> str:
        """What decision level ``level``'s policy sees: ``image`` or ``segmentation``
        (``policy.inputs``, and ``policy.informed_levels`` for image-first runs)."""
        if self.policy.inputs != "image":
            return self.policy.inputs
        decisions = self.levels.geometry().finest_level
        informed = {lv % decisions if decisions else lv for lv in self.policy.informed_levels}
        return "segmentation" if level in informed else "image"

    @property
    def refine_levels(self) -> frozenset[int]:
        """The decision levels whose breaks are refined (``policy.refine_levels``, resolved)."""
        decisions = self.levels.geometry().finest_level
        return (
            frozenset(lv % decisions for lv in self.policy.refine_levels)
            if decisions
            else frozenset()
        )

    @property
    def decide_first(self) -> tuple[bool, ...]:
        """Per decision level, whether its policy decides before f_i runs: the cost model of
        the rewards (:mod:`razn.rewards`)."""
        decisions = self.levels.geometry().finest_level
        return tuple(self.level_inputs(level) == "image" for level in range(decisions))

    @property
    def reward_unit_area(self) -> float:
        """The reward's unit of area: one finest-level patch at the evaluation resolution."""
        from razn.rewards import reward_unit_area

        return reward_unit_area(
            self.levels.patch_size, self.levels.downsamples[-1], self.eval_downsample
        )


def load_run_config(path: str | Path | None = None, overrides: tuple[str, ...] = ()) -> RunConfig:
    """Load a :class:`RunConfig` from YAML (or defaults) with ``key=value`` overrides."""
    return load_config(RunConfig, path, overrides)
