"""The reward cache and the ``razn/Zoom-v0`` environment."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401 - registers razn/Zoom-v0
from envs.reward_cache import ensure_slide_cache, merge_patches, read_tables, split_patches
from razn.config import load_config
from razn.models import SegmenterConfig, create_segmenter, save_segmenter
from razn.run_config import RunConfig
from razn.slide import write_zarr_slide

TINY_MODEL = SegmenterConfig(encoder_depth=3, decoder_channels=(16, 8, 8))


def tiny_config(**overrides: object) -> RunConfig:
    settings = [
        "levels.downsamples=[4, 2, 1]",
        "levels.patch_size=32",
        "observation.size=36",
        "tissue.smoothing_um=0",
        "tissue.closing_um=0",
        "tissue.min_object_um2=0",
        "tissue.mpp=4",
        "model.encoder_depth=3",
        "model.decoder_channels=[16, 8, 8]",
    ] + [f"{k}={v}" for k, v in overrides.items()]
    return load_config(RunConfig, None, settings)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    """A 300x200 slide (not a multiple of the 128 px root), its mask and a 3-level cache."""
    folder = tmp_path_factory.mktemp("cache")
    rng = np.random.default_rng(0)
    image = np.full((200, 300, 3), 240, np.uint8)
    image[20:180, 30:270] = rng.integers(120, 200, (160, 240, 3))
    labels = np.zeros((200, 300), np.uint8)
    labels[60:140, 100:220] = 1
    slide = write_zarr_slide(folder / "slide.zarr", [image], mpp=(1.0, 1.0), chunk=64)
    import zarr

    zarr.save_array(str(folder / "mask.zarr"), labels)
    config = tiny_config()
    torch.manual_seed(0)
    models = [create_segmenter(TINY_MODEL, 2).eval() for _ in range(3)]
    paths = [
        save_segmenter(m, TINY_MODEL, folder / f"f{i}.safetensors") for i, m in enumerate(models)
    ]
    path = ensure_slide_cache(slide, folder / "mask.zarr", models, paths, config, folder / "cache")
    return path, config, models, paths, folder


def test_split_and_merge_patches_are_inverse():
    region = np.arange(6 * 6 * 2).reshape(6, 6, 2)
    patches = split_patches(region, 3)
    assert patches.shape == (9, 2, 2, 2)
    np.testing.assert_array_equal(patches[5], region[2:4, 4:6])
    np.testing.assert_array_equal(merge_patches(patches, 3), region)


def test_cache_shapes_areas_and_reuse(tiny_cache):
    path, config, models, paths, folder = tiny_cache
    tables, roots = read_tables([path])
    np.testing.assert_array_equal(roots[0], [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]])
    assert [t.errors.shape for t in tables] == [(6, 1, 1), (6, 2, 2), (6, 4, 4)]
    # Evaluated area: every level-0 pixel of the 300x200 slide, exactly once per level.
    assert [t.area.sum() for t in tables] == [300 * 200] * 3
    assert tables[0].area[2, 0, 0] == (300 - 256) * 128  # the clipped corner roots
    assert tables[0].observations["image"].shape == (6, 1, 1, 3, 36, 36)
    assert "image" not in tables[2].observations  # no policy at the finest level
    again = ensure_slide_cache(
        folder / "slide.zarr", folder / "mask.zarr", models, paths, config, folder / "cache"
    )
    assert again == path  # reused: same inputs, same key


def test_env_passes_gymnasium_and_sb3_checks(tiny_cache):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    path, config, *_ = tiny_cache
    for level in range(config.levels.geometry().finest_level):
        env = gym.make(
            "razn/Zoom-v0",
            cache=[path],
            level=level,
            observation=config.observation,
            episode_length=8,
            unit_area=config.reward_unit_area,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            gym_check_env(env.unwrapped, skip_render_check=True)
            sb3_check_env(env.unwrapped, warn=True)


def test_same_seed_same_rollout(tiny_cache):
    path, config, *_ = tiny_cache

    def rollout(seed):
        env = gym.make(
            "razn/Zoom-v0",
            cache=[path],
            level=1,
            observation=config.observation,
            episode_length=10,
            unit_area=config.reward_unit_area,
        )
        _, info = env.reset(seed=seed)
        nodes, rewards = [info["node"]], []
        for step in range(10):
            _obs, reward, terminated, truncated, info = env.step(step % 2)
            nodes.append(info["node"])
            rewards.append(reward)
        assert terminated and not truncated
        return nodes, rewards

    assert rollout(3) == rollout(3)
    assert rollout(3) != rollout(4)


def _hand_built_tables(parent_errors: float, child_errors: list[float]):
    from envs.reward_cache import LevelTable

    observations = {
        "image": np.zeros((1, 1, 1, 3, 36, 36), np.uint8),
        "seg": np.zeros((1, 1, 1, 2, 36, 36), np.uint8),
        "stats": np.zeros((1, 1, 1, 7), np.float32),
    }
    parent = LevelTable(np.array([[[parent_errors]]]), np.array([[[1000.0]]]), observations)
    children = LevelTable(np.array(child_errors).reshape(1, 2, 2), np.full((1, 2, 2), 250.0), {})
    return [parent, children], None


@pytest.mark.parametrize(
    ("inputs", "parent", "children", "expected"),
    [
        # image-first: a zoom runs 4 segmentations instead of the parent's 1
        ("image", 300.0, [0.0, 0.0, 0.0, 0.0], 300 / 250 - 0.01 * 3),  # f_0 wrong, children right
        ("image", 40.0, [10.0, 10.0, 10.0, 10.0], -0.01 * 3),  # zooming changes nothing
        # f_i first: the parent is segmented anyway, the zoom adds 4
        ("segmentation", 300.0, [0.0, 0.0, 0.0, 0.0], 300 / 250 - 0.01 * 4),
        ("segmentation", 40.0, [10.0, 10.0, 10.0, 10.0], -0.01 * 4),
    ],
)
def test_env_rewards_on_hand_built_cache(inputs, parent, children, expected):
    from razn.observation import ObservationConfig
    from razn.rewards import RewardConfig

    env = gym.make(
        "razn/Zoom-v0",
        cache=_hand_built_tables(parent, children),
        level=0,
        reward=RewardConfig(lam=0.01),
        observation=ObservationConfig(size=36),
        episode_length=2,
        unit_area=250.0,  # the pixels of one child (the finest level)
        inputs=inputs,
    )
    observation, _ = env.reset(seed=0)
    assert sorted(observation) == (
        ["image", "seg", "stats"] if inputs == "segmentation" else ["image", "stats"]
    )
    _, zoom_reward, *_ = env.step(1)
    _, break_reward, *_ = env.step(0)
    assert zoom_reward == pytest.approx(expected) and break_reward == 0.0


@pytest.mark.parametrize(
    ("patch", "observes", "context"),
    [
        (32, "image", None),  # patches smaller than the 36-px view
        (64, "image", None),  # and larger
        # f_i's output with context margins (levels.context): the cache reads each patch
        # with its margin and keeps the centre, as the engine does
        (32, "segmentation", "[4, 8, 0]"),
    ],
)
def test_policies_are_trained_on_exactly_what_the_engine_shows_them(
    tmp_path, patch, observes, context
):
    from razn.engine import ZoomEngine
    from razn.observation import policy_view
    from razn.slide import open_slide
    from razn.slide.tissue import detect_tissue

    rng = np.random.default_rng(1)
    image = np.full((200, 300, 3), 240, np.uint8)
    image[20:180, 30:270] = rng.integers(80, 200, (160, 240, 3))
    slide_path = write_zarr_slide(
        tmp_path / "slide.zarr", [image, image[::2, ::2]], mpp=(1.0, 1.0), chunk=64
    )
    import zarr

    zarr.save_array(str(tmp_path / "mask.zarr"), np.zeros((200, 300), np.uint8))
    overrides: dict[str, object] = {"levels.patch_size": patch}
    if context is not None:
        overrides["levels.context"] = context
    config = tiny_config(**overrides)
    models = [create_segmenter(TINY_MODEL, 2).eval() for _ in range(3)]
    paths = [
        save_segmenter(m, TINY_MODEL, tmp_path / f"f{i}.safetensors") for i, m in enumerate(models)
    ]
    cache = ensure_slide_cache(
        slide_path, tmp_path / "mask.zarr", models, paths, config, tmp_path / "cache"
    )
    tables, roots = read_tables([cache])
    root_index = {(int(c), int(r)): k for k, (c, r) in enumerate(roots[0])}
    seen = {}

    class Recorder:
        name = "recorder"

        def decide(self, level, nodes, observations):
            for i, node in enumerate(nodes):
                seen[node] = {k: v[i] for k, v in observations.items()}
            return np.ones(len(nodes), bool), np.ones(len(nodes), np.float32)

    Recorder.observes = observes
    with open_slide(slide_path) as slide:
        engine = ZoomEngine(models, Recorder(), config)
        engine.segment(slide, tmp_path / "labels.zarr", tissue=detect_tissue(slide, config.tissue))
    assert seen
    for node, observed in seen.items():
        n = 2**node.level
        k = root_index[(node.col // n, node.row // n)]
        cached = policy_view(
            {
                key: values[k, node.row % n, node.col % n]
                for key, values in tables[node.level].observations.items()
            },
            observes,
        )
        assert observed.keys() == cached.keys()
        np.testing.assert_array_equal(observed["image"], cached["image"])
        np.testing.assert_allclose(observed["stats"], cached["stats"], atol=1e-5)
        if "seg" in cached:  # f_i's output quantised to uint8: the engine's batches and the
            # cache's differ in size, so float sums differ in the last bits and a value on a
            # rounding edge may land one step away (seen about once in ten random networks)
            seg_o, seg_c = observed["seg"].astype(int), cached["seg"].astype(int)
            assert np.abs(seg_o - seg_c).max() <= 1


def test_the_env_serves_only_nodes_holding_tissue():
    """The engine never asks about a node without tissue, so a policy is not trained on one
    (level 1 of a hand-built tree: two of its four nodes hold tissue)."""
    from envs.reward_cache import LevelTable
    from envs.zoom import zoom_rewards
    from razn.observation import TISSUE_STAT, ObservationConfig
    from razn.rewards import RewardConfig

    def seg_observations(n: int) -> dict[str, np.ndarray]:
        return {
            "image": np.zeros((1, n, n, 3, 36, 36), np.uint8),
            "seg": np.zeros((1, n, n, 2, 36, 36), np.uint8),
            "stats": np.full((1, n, n, 7), 0.5, np.float32),
        }

    shown_by_parent = seg_observations(2)
    shown_by_parent["stats"][0, :, :, TISSUE_STAT] = [[0.8, 0.0], [0.0, 0.3]]
    tables = [
        LevelTable(np.array([[[500.0]]]), np.array([[[4000.0]]]), seg_observations(1)),
        LevelTable(
            np.array([[[300.0, 0.0], [0.0, 40.0]]]),
            np.full((1, 2, 2), 1000.0),
            seg_observations(2),
            np.array([[[300.0, 0.0], [0.0, 40.0]]]),
            shown_by_parent,
        ),
        LevelTable(np.zeros((1, 4, 4)), np.full((1, 4, 4), 250.0), {}),
    ]
    reward = RewardConfig(lam=0.01)
    env = gym.make(
        "razn/Zoom-v0",
        cache=(tables, None),
        level=1,
        reward=reward,
        observation=ObservationConfig(size=36),
        episode_length=4,
        unit_area=250.0,
    ).unwrapped
    everywhere = zoom_rewards(tables, 1, 2, {}, reward, 250.0)[0]
    assert env.rewards.tolist() == pytest.approx([everywhere[0, 0], everywhere[1, 1]])
    assert everywhere[0, 0] == pytest.approx(300 / 250 - 0.01 * 3)  # f_1 wrong, f_2 right


def test_stratified_sampling_keeps_the_uniform_objective():
    """``stratified`` draws half the steps from the one root of four where zooming pays and
    weights each reward by its pool's share of the roots × 2 (0.5 and 1.5), so a policy's
    expected reward per step is the uniform sampling's; ``balanced`` draws alike, unweighted."""
    from envs.reward_cache import LevelTable
    from razn.observation import ObservationConfig
    from razn.rewards import RewardConfig

    observations = {
        "image": np.zeros((4, 1, 1, 3, 36, 36), np.uint8),
        "seg": np.zeros((4, 1, 1, 2, 36, 36), np.uint8),
        "stats": np.zeros((4, 1, 1, 7), np.float32),
    }
    root_errors = np.array([300.0, 40, 40, 40]).reshape(4, 1, 1)
    child_errors = np.full((4, 2, 2), 10.0) * (np.arange(4) > 0)[:, None, None]
    tables = [
        LevelTable(root_errors, np.full((4, 1, 1), 1000.0), observations),
        LevelTable(child_errors, np.full((4, 2, 2), 250.0), {}),
    ]
    pays, costs = 300 / 250 - 0.01 * 3, -0.01 * 3  # root 0; roots 1-3 (zooming fixes nothing)

    def zoom_everywhere(sampling: str) -> list[tuple[int, float]]:
        env = gym.make(
            "razn/Zoom-v0",
            cache=(tables, None),
            level=0,
            reward=RewardConfig(lam=0.01),
            observation=ObservationConfig(size=36),
            episode_length=4000,
            sampling=sampling,
            unit_area=250.0,
        )
        env.reset(seed=0)
        steps = []
        for _ in range(4000):
            *_, reward, _, _, info = env.step(1)
            steps.append((info["node"], reward))  # the step's info names the node it rewarded
        return steps

    for sampling, weights in (("stratified", (0.5, 1.5)), ("balanced", (1.0, 1.0))):
        steps = zoom_everywhere(sampling)
        assert {(n == 0, round(r, 9)) for n, r in steps} == {
            (True, round(pays * weights[0], 9)),
            (False, round(costs * weights[1], 9)),
        }
        assert np.mean([n == 0 for n, _ in steps]) == pytest.approx(0.5, abs=0.03)
    stratified = np.mean([r for _, r in zoom_everywhere("stratified")])
    assert stratified == pytest.approx((pays + 3 * costs) / 4, abs=0.03)  # uniform: 0.27
