"""The policy's features extractor: a small CNN over the patch and f_i's view, plus the stats.

Stable-Baselines3 divides the uint8 image spaces (``image``, ``seg``) by 255 before
they get here (``normalize_images``); ``stats`` arrive as they are, in [0, 1].
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from razn.policy.config import PolicyNetConfig


class ZoomFeatures(BaseFeaturesExtractor):
    """Features of a ``Dict(image, seg, stats)`` observation (see :mod:`razn.observation`)."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        cnn_channels: tuple[int, ...] = (16, 32, 64),
        stats_features: int = 32,
        stats_transform: str = "raw",
    ):
        in_channels = observation_space["image"].shape[0] + observation_space["seg"].shape[0]
        num_stats = observation_space["stats"].shape[0]
        super().__init__(observation_space, features_dim=cnn_channels[-1] + stats_features)
        layers: list[nn.Module] = []
        for out_channels in cnn_channels:
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), nn.ReLU()]
            in_channels = out_channels
        self.cnn = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.stats_transform = stats_transform
        stats_inputs = num_stats * (2 if stats_transform == "log" else 1)
        self.stats = nn.Sequential(nn.Linear(stats_inputs, stats_features), nn.ReLU())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        pixels = torch.cat([observations["image"], observations["seg"]], dim=1)
        stats = observations["stats"]
        if self.stats_transform == "log":
            stats = torch.cat([stats, log_scale(stats)], dim=1)
        return torch.cat([self.cnn(pixels), self.stats(stats)], dim=1)


LOG_FLOOR = 1e-3


def log_scale(values: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` → ``[0, 1]`` on a log scale: 0.001 → 0.10, 0.01 → 0.35, 0.1 → 0.67, 1 → 1."""
    floor = torch.log(torch.tensor(LOG_FLOOR, dtype=values.dtype))
    return (torch.log(values.clamp(0.0, 1.0) + LOG_FLOOR) - floor) / (-floor)


def policy_kwargs(config: PolicyNetConfig) -> dict:
    """``policy_kwargs`` for SB3's ``MultiInputPolicy`` with :class:`ZoomFeatures`."""
    return {
        "features_extractor_class": ZoomFeatures,
        "features_extractor_kwargs": {
            "cnn_channels": tuple(config.cnn_channels),
            "stats_features": config.stats_features,
            "stats_transform": config.stats_transform,
        },
        "net_arch": {"pi": list(config.hidden), "vf": list(config.hidden)},
    }
