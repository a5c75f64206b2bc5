"""Configuration of the policy networks (kept free of heavy imports: the run config holds it)."""

from __future__ import annotations

from dataclasses import dataclass

from razn.config import check_range
from razn.errors import ConfigError

STATS_TRANSFORMS = ("raw", "log")


@dataclass(frozen=True)
class PolicyNetConfig:
    """Architecture of the policy and value networks."""

    cnn_channels: tuple[int, ...] = (16, 32, 64)
    """Output channels of the stride-2 convolutions over image + segmentation view."""
    stats_features: int = 64
    """Width of the layer embedding the summary statistics."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layers of the policy and value heads (SB3 ``net_arch``)."""
    stats_transform: str = "log"
    """``raw``: the stats as they are; ``log``: each stat also on a log scale,
    ``log(x + 1e-3)`` mapped to [0, 1], so that differences among small values (mean
    entropy is often below 0.1) reach the network as large as those among large ones."""
    standardize_stats: bool = True
    """Shift and scale the (transformed) stats by their mean and standard deviation over
    the training patches of the level (stored with the policy's weights)."""

    def __post_init__(self) -> None:
        check_range("policy_net.cnn_channels (count)", len(self.cnn_channels), low=1)
        check_range("policy_net.stats_features", self.stats_features, low=1)
        if self.stats_transform not in STATS_TRANSFORMS:
            raise ConfigError(
                f"policy.net.stats_transform must be one of {STATS_TRANSFORMS}, "
                f"got {self.stats_transform!r}"
            )


@dataclass(frozen=True)
class GateConfig:
    """The image-only gate in front of each g_i: zoom without running f_i where confident.

    g_i decides from f_i's output, so every node it zooms has been segmented only to
    build its observation. Most tissue nodes of the coarse levels are zoomed anyway; a
    small CNN that sees only the patch (and its tissue share) learns to predict g_i's
    decision, and where it is confident on held-out slides the engine zooms without
    calling f_i or g_i at all.
    """

    enabled: bool = True
    """Train gates with the policies and use them when segmenting."""
    precision: float = 0.95
    """On the calibration slides, the least share of gate zooms that g_i also zooms; the
    gate's threshold is the lowest that keeps this precision (no gate at a level where
    none does)."""
    min_threshold: float = 0.5
    """The gate zooms only where its P(g_i zooms) is at least this, whatever the calibration."""
    calibration_splits: tuple[str, ...] = ("val",)
    """Manifest splits whose slides calibrate the thresholds (never ``test``)."""
    cnn_channels: tuple[int, ...] = (16, 32, 64)
    """Output channels of the gate's stride-2 convolutions over the downsized patch."""
    epochs: int = 30
    """Passes over the training nodes of a level."""
    batch_size: int = 64
    lr: float = 3e-3
    """Adam learning rate."""
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        check_range("gate.precision", self.precision, low=0.0, high=1.0)
        check_range("gate.min_threshold", self.min_threshold, low=0.0, high=1.0)
        check_range("gate.cnn_channels (count)", len(self.cnn_channels), low=1)
        check_range("gate.epochs", self.epochs, low=1)
        check_range("gate.batch_size", self.batch_size, low=1)
        check_range("gate.lr", self.lr, low=0.0)
        check_range("gate.weight_decay", self.weight_decay, low=0.0)
        if "test" in self.calibration_splits:
            raise ConfigError("gate.calibration_splits must not include test")
