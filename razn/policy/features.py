"""The policy's features extractor: a small CNN over the patch (and f_i's view, when the policy
sees it), plus the stats.

Stable-Baselines3 divides the uint8 image spaces (``image``, ``seg``) by 255 before
they get here (``normalize_images``); ``stats`` arrive as they are, in [0, 1]. With
``standardize_stats`` the (transformed) stats are shifted and scaled by their mean and
standard deviation over the training patches, held as buffers so that they travel with
the weights: a single unit can then threshold a stat whose useful range is 0.001–0.05.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from razn.policy.config import PolicyNetConfig

PIXEL_KEYS = ("image", "seg")
"""The observation's image-like arrays, stacked as channels in this order when present."""


class ZoomFeatures(BaseFeaturesExtractor):
    """Features of a ``Dict(image, [seg,] stats)`` observation (see :mod:`razn.observation`)."""

    stats_mean: torch.Tensor  # buffers, registered in __init__ with standardize_stats
    stats_std: torch.Tensor

    def __init__(
        self,
        observation_space: spaces.Dict,
        cnn_channels: tuple[int, ...] = (16, 32, 64),
        stats_features: int = 32,
        stats_transform: str = "raw",
        standardize_stats: bool = False,
        stats_mean: Sequence[float] | None = None,
        stats_std: Sequence[float] | None = None,
    ):
        self.pixel_keys = [key for key in PIXEL_KEYS if key in observation_space.spaces]
        in_channels = sum(_leading_size(observation_space, key) for key in self.pixel_keys)
        num_stats = _leading_size(observation_space, "stats")
        super().__init__(observation_space, features_dim=cnn_channels[-1] + stats_features)
        layers: list[nn.Module] = []
        for out_channels in cnn_channels:
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), nn.ReLU()]
            in_channels = out_channels
        self.cnn = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.stats_transform = stats_transform
        stats_inputs = num_stats * (2 if stats_transform == "log" else 1)
        self.standardize_stats = standardize_stats
        if standardize_stats:
            # Identity until set: a policy being loaded gets its values from the file.
            mean = torch.zeros(stats_inputs) if stats_mean is None else torch.tensor(stats_mean)
            std = torch.ones(stats_inputs) if stats_std is None else torch.tensor(stats_std)
            if mean.shape != (stats_inputs,) or std.shape != (stats_inputs,):
                raise ValueError(
                    f"stats_mean and stats_std need {stats_inputs} values, "
                    f"got {tuple(mean.shape)} and {tuple(std.shape)}"
                )
            self.register_buffer("stats_mean", mean.float())
            self.register_buffer("stats_std", std.float())
        self.stats = nn.Sequential(nn.Linear(stats_inputs, stats_features), nn.ReLU())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        pixels = torch.cat([observations[key] for key in self.pixel_keys], dim=1)
        stats = transform_stats(observations["stats"], self.stats_transform)
        if self.standardize_stats:
            stats = (stats - self.stats_mean) / self.stats_std
        return torch.cat([self.cnn(pixels), self.stats(stats)], dim=1)


def _leading_size(observation_space: spaces.Dict, key: str) -> int:
    """The first dimension of observation ``key`` (channels of an image, count of stats)."""
    shape = observation_space[key].shape
    if shape is None:
        raise ValueError(f"observation {key!r} has no shape")
    return shape[0]


def transform_stats(stats: torch.Tensor, transform: str) -> torch.Tensor:
    """The stats ``(N, S)`` as the embedding layer sees them before standardisation:
    as they are (``raw``) or followed by their :func:`log_scale` (``log``, ``(N, 2S)``)."""
    if transform == "log":
        return torch.cat([stats, log_scale(stats)], dim=1)
    return stats


LOG_FLOOR = 1e-3


def log_scale(values: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` → ``[0, 1]`` on a log scale: 0.001 → 0.10, 0.01 → 0.35, 0.1 → 0.67, 1 → 1."""
    floor = torch.log(torch.tensor(LOG_FLOOR, dtype=values.dtype))
    return (torch.log(values.clamp(0.0, 1.0) + LOG_FLOOR) - floor) / (-floor)


STD_FLOOR = 1e-3
"""Smallest standard deviation a stat is divided by (a stat constant over the training
patches, e.g. the tissue share of a level where every patch is full, is left unscaled)."""


def stats_normalisation(stats: np.ndarray, config: PolicyNetConfig) -> dict[str, list[float]]:
    """``stats_mean`` and ``stats_std`` of training stats ``(N, S)`` after the config's
    transform; ``{}`` when ``config.standardize_stats`` is off."""
    if not config.standardize_stats:
        return {}
    values = transform_stats(torch.as_tensor(np.asarray(stats, np.float32)), config.stats_transform)
    std = values.std(dim=0, unbiased=False).clamp_min(STD_FLOOR)
    return {"stats_mean": values.mean(dim=0).tolist(), "stats_std": std.tolist()}


def policy_kwargs(config: PolicyNetConfig, normalisation: Mapping[str, Any] | None = None) -> dict:
    """``policy_kwargs`` for SB3's ``MultiInputPolicy`` with :class:`ZoomFeatures`;
    ``normalisation`` from :func:`stats_normalisation` (when training)."""
    return {
        "features_extractor_class": ZoomFeatures,
        "features_extractor_kwargs": {
            "cnn_channels": tuple(config.cnn_channels),
            "stats_features": config.stats_features,
            "stats_transform": config.stats_transform,
            "standardize_stats": config.standardize_stats,
            **(normalisation or {}),
        },
        "net_arch": {"pi": list(config.hidden), "vf": list(config.hidden)},
    }
