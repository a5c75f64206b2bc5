"""Configuration of the policy networks (kept free of heavy imports: the run config holds it)."""

from __future__ import annotations

from dataclasses import dataclass

from razn.config import check_range
from razn.errors import ConfigError

STATS_TRANSFORMS = ("raw", "log")
POLICY_INPUTS = ("image", "segmentation")
"""What a policy may see (:mod:`razn.observation`): the patch alone, or the patch and f_i's output."""


def check_inputs(inputs: str) -> None:
    """Refuse an unknown ``policy.inputs`` value."""
    if inputs not in POLICY_INPUTS:
        raise ConfigError(
            f"policy.inputs must be one of {', '.join(POLICY_INPUTS)}, got {inputs!r}"
        )


@dataclass(frozen=True)
class PolicyNetConfig:
    """Architecture of the policy and value networks."""

    cnn_channels: tuple[int, ...] = (16, 32, 64)
    """Output channels of the stride-2 convolutions over the image (and f_i's view)."""
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
