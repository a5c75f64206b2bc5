"""Policy networks: the stats transform, and safetensors round trips with their net config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from razn.errors import ConfigError
from razn.observation import ObservationConfig
from razn.policy.config import PolicyNetConfig
from razn.policy.features import log_scale, policy_kwargs, stats_normalisation
from razn.policy.store import build_policy, load_policy, save_policy


def test_log_scale_spreads_small_values_and_keeps_the_unit_interval():
    values = log_scale(torch.tensor([[0.0, 0.001, 0.01, 0.1, 1.0]]))[0].tolist()
    assert values[0] == pytest.approx(0.0, abs=1e-6)
    assert values[-1] == pytest.approx(1.0, abs=1e-3)
    assert values[1:4] == pytest.approx([0.1003, 0.3471, 0.6681], abs=1e-3)


def test_unknown_stats_transform_is_refused():
    with pytest.raises(ConfigError, match="stats_transform"):
        PolicyNetConfig(stats_transform="sqrt")


@pytest.mark.parametrize("size", [8, 16, 36, 64])
def test_policies_take_any_view_size_down_to_8_px(size):
    """The CNN pools globally, so a small view (the demo's 16 px) gives one P(zoom) per patch."""
    net = PolicyNetConfig(cnn_channels=(4, 8, 8), stats_features=4, hidden=(4,))
    policy = build_policy(ObservationConfig(size=size), 2, net, "image")
    obs = {"image": np.zeros((5, 3, size, size), np.uint8), "stats": np.zeros((5, 8), np.float32)}
    with torch.inference_mode():
        probs = policy.get_distribution(policy.obs_to_tensor(obs)[0]).distribution.probs
    assert tuple(probs.shape) == (5, 2)
    with pytest.raises(ConfigError, match=r"observation.size must be in \[8, 512\], got 7"):
        ObservationConfig(size=7)


def test_stats_normalisation_is_the_mean_and_floored_std_of_the_transformed_stats():
    stats = np.array([[0.0, 0.5], [0.2, 0.5], [0.4, 0.5]], np.float32)
    raw = stats_normalisation(stats, PolicyNetConfig(stats_transform="raw"))
    assert raw["stats_mean"] == pytest.approx([0.2, 0.5])
    # population std of (0, 0.2, 0.4) is sqrt(0.08/3); a constant stat gets the floor
    assert raw["stats_std"] == pytest.approx([(0.08 / 3) ** 0.5, 1e-3])
    logged = stats_normalisation(
        stats, PolicyNetConfig(stats_transform="log", standardize_stats=True)
    )
    assert len(logged["stats_mean"]) == 4
    assert logged["stats_mean"][:2] == pytest.approx([0.2, 0.5])
    assert stats_normalisation(stats, PolicyNetConfig(standardize_stats=False)) == {}


def test_standardised_stats_reach_the_embedding_as_z_scores():
    net = PolicyNetConfig(cnn_channels=(4,), stats_features=2, hidden=(4,), stats_transform="raw")
    space = build_policy(ObservationConfig(size=36), 2, net, "segmentation").observation_space
    kwargs = policy_kwargs(net, {"stats_mean": [0.5] * 7, "stats_std": [0.25] * 7})
    features = kwargs["features_extractor_class"](space, **kwargs["features_extractor_kwargs"])
    seen = []
    features.stats.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    obs = {
        "image": torch.zeros(1, 3, 36, 36),
        "seg": torch.zeros(1, 2, 36, 36),
        "stats": torch.tensor([[0.0, 0.25, 0.5, 0.75, 1.0, 0.5, 0.5]]),
    }
    features(obs)
    torch.testing.assert_close(seen[0], torch.tensor([[-2.0, -1.0, 0.0, 1.0, 2.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="need 7 values, got"):
        bad = policy_kwargs(net, {"stats_mean": [0.5] * 3, "stats_std": [0.25] * 3})
        kwargs["features_extractor_class"](space, **bad["features_extractor_kwargs"])


@pytest.mark.parametrize(
    ("transform", "standardize", "inputs"),
    [
        ("raw", False, "segmentation"),
        ("log", False, "segmentation"),
        ("log", True, "segmentation"),
        ("log", True, "image"),
    ],
)
def test_policy_round_trip_keeps_weights_and_transform(tmp_path, transform, standardize, inputs):
    observation = ObservationConfig(size=36)
    net = PolicyNetConfig(
        cnn_channels=(4, 8),
        stats_features=8,
        hidden=(8,),
        stats_transform=transform,
        standardize_stats=standardize,
    )
    policy = build_policy(observation, 2, net, inputs)
    stats = 7 if inputs == "segmentation" else 8  # 5 + K summaries of f_i, or the image's 8
    if standardize:  # as training sets them: non-trivial values that must travel with the file
        extractor = policy.features_extractor
        extractor.stats_mean.copy_(torch.linspace(0.1, 0.9, 2 * stats))
        extractor.stats_std.copy_(torch.linspace(0.2, 0.5, 2 * stats))
    path = save_policy(
        policy, tmp_path / "level_0.safetensors", observation, 2, net, {"lam": 0.01}, inputs
    )
    loaded, extra = load_policy(path)
    assert extra == {"lam": 0.01}
    assert loaded.features_extractor.stats_transform == transform
    assert sorted(loaded.observation_space.spaces) == sorted(policy.observation_space.spaces)
    rng = np.random.default_rng(0)
    obs = {
        "image": rng.integers(0, 255, (3, 3, 36, 36), dtype=np.uint8),
        "stats": rng.random((3, stats), dtype=np.float32),
    }
    if inputs == "segmentation":
        obs["seg"] = rng.integers(0, 255, (3, 2, 36, 36), dtype=np.uint8)
    policy.set_training_mode(False)
    with torch.inference_mode():
        expected = policy.get_distribution(policy.obs_to_tensor(obs)[0]).distribution.probs
        got = loaded.get_distribution(loaded.obs_to_tensor(obs)[0]).distribution.probs
    torch.testing.assert_close(got, expected)


def test_a_policy_file_without_inputs_saw_f_is_output(tmp_path):
    """Files written before image-first policies record no inputs: they observed f_i."""
    from razn.safe_weights import read_metadata, save_module

    observation, net = ObservationConfig(size=36), PolicyNetConfig(cnn_channels=(4,), hidden=(4,))
    policy = build_policy(observation, 2, net, "segmentation")
    path = save_policy(
        policy, tmp_path / "level_0.safetensors", observation, 2, net, {}, "segmentation"
    )
    metadata = read_metadata(path, "razn-policy/1", "policy")
    del metadata["inputs"]
    save_module(policy, path, metadata)
    loaded, _ = load_policy(path)
    assert "seg" in loaded.observation_space.spaces
