"""Policy networks: the stats transform, and safetensors round trips with their net config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from razn.errors import ConfigError
from razn.observation import ObservationConfig
from razn.policy.config import PolicyNetConfig
from razn.policy.features import log_scale
from razn.policy.store import build_policy, load_policy, save_policy


def test_log_scale_spreads_small_values_and_keeps_the_unit_interval():
    values = log_scale(torch.tensor([[0.0, 0.001, 0.01, 0.1, 1.0]]))[0].tolist()
    assert values[0] == pytest.approx(0.0, abs=1e-6)
    assert values[-1] == pytest.approx(1.0, abs=1e-3)
    assert values[1:4] == pytest.approx([0.1003, 0.3471, 0.6681], abs=1e-3)


def test_unknown_stats_transform_is_refused():
    with pytest.raises(ConfigError, match="stats_transform"):
        PolicyNetConfig(stats_transform="sqrt")


@pytest.mark.parametrize("transform", ["raw", "log"])
def test_policy_round_trip_keeps_weights_and_transform(tmp_path, transform):
    observation = ObservationConfig(size=36)
    net = PolicyNetConfig(
        cnn_channels=(4, 8), stats_features=8, hidden=(8,), stats_transform=transform
    )
    policy = build_policy(observation, 2, net)
    path = save_policy(policy, tmp_path / "level_0.safetensors", observation, 2, net, {"lam": 0.01})
    loaded, extra = load_policy(path)
    assert extra == {"lam": 0.01}
    assert loaded.features_extractor.stats_transform == transform
    rng = np.random.default_rng(0)
    obs = {
        "image": rng.integers(0, 255, (3, 3, 36, 36), dtype=np.uint8),
        "seg": rng.integers(0, 255, (3, 2, 36, 36), dtype=np.uint8),
        "stats": rng.random((3, 7), dtype=np.float32),
    }
    policy.set_training_mode(False)
    with torch.inference_mode():
        expected = policy.get_distribution(policy.obs_to_tensor(obs)[0]).distribution.probs
        got = loaded.get_distribution(loaded.obs_to_tensor(obs)[0]).distribution.probs
    torch.testing.assert_close(got, expected)
