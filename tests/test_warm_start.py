"""The full-information warm start of a zoom policy (razn.train.warm_start)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from razn.engine.deciders import zoom_probability
from razn.observation import ObservationConfig, image_observations
from razn.policy.config import PolicyNetConfig
from razn.policy.store import build_policy
from razn.train.warm_start import warm_start


def _policy(observation: ObservationConfig):
    torch.manual_seed(0)
    net = PolicyNetConfig(cnn_channels=(4,), stats_features=8, hidden=(16,))
    return build_policy(observation, 2, net, "image")


def _bandit(count: int = 256) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Patches whose zoom pays exactly where they are dark (the image tells), with rewards
    of uneven size: +1…+3 on dark patches, −0.05…−0.5 on light ones."""
    generator = np.random.default_rng(7)
    dark = np.arange(count) % 4 == 0
    grey = np.where(dark, 60, 200).astype(np.uint8)
    images = np.repeat(grey[:, None, None, None], 3, axis=1) * np.ones((1, 1, 8, 8), np.uint8)
    observations = image_observations(images, np.ones(count, np.float32))
    rewards = np.where(dark, generator.uniform(1, 3, count), -generator.uniform(0.05, 0.5, count))
    return observations, rewards


def test_warm_start_zooms_exactly_where_zooming_pays() -> None:
    observations, rewards = _bandit()
    policy = _policy(ObservationConfig(size=8))
    report = warm_start(policy, observations, rewards, epochs=30, batch_size=64, seed=0)
    zoom = zoom_probability(policy, observations) > 0.5
    np.testing.assert_array_equal(zoom, rewards > 0)
    assert report.patches == len(rewards)
    assert report.reward == pytest.approx(rewards[rewards > 0].sum())
    assert report.oracle == pytest.approx(rewards[rewards > 0].sum())
    # The value head learned what the warm policy expects to earn: about r where it zooms.
    tensors, _ = policy.obs_to_tensor(observations)
    with torch.no_grad():
        values = policy.predict_values(tensors).squeeze(-1).numpy()
    assert np.mean(np.abs(values[zoom] - rewards[zoom])) < 0.5 * rewards[zoom].mean()


def test_warm_start_without_anything_to_learn_leaves_the_policy_alone() -> None:
    observations, _ = _bandit(32)
    policy = _policy(ObservationConfig(size=8))
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    report = warm_start(policy, observations, np.zeros(32), epochs=5)
    assert report.reward == 0.0 and report.oracle == 0.0
    for key, value in policy.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_train_policy_warm_starts_every_policy_before_ppo(tiny_run, tmp_path) -> None:
    """``policy.warm_start_epochs`` fits each level's policy (g_i and the refine policy h_i)
    to the cached rewards first and records what it reached beside PPO's log."""
    import json

    from click.testing import CliRunner

    from razn.cli import main

    folder = tmp_path / "warm"
    args = ["train-policy", "--run", str(tiny_run / "run"), "--into", str(folder), "--quiet"]
    result = CliRunner().invoke(main, [*args, "--set", "policy.warm_start_epochs=2"])
    assert result.exit_code == 0, result.output
    records = sorted(folder.glob("*_log/warm_start.json"))
    # levels 2 → 0 of the tiny run: g_1, g_0 and the refine policy of the last decision level
    assert [path.parent.name for path in records] == ["level_0_log", "level_1_log", "refine_1_log"]
    for path in records:
        report = json.loads(path.read_text())
        assert report["epochs"] == 2 and report["patches"] > 0
        assert report["reward"] <= report["oracle"] + 1e-9
