"""Which policy sets count as trained: folders are reused only for the config they were made with."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from razn.benchmark.workers import policy_set_config
from razn.config import dump_yaml, from_mapping
from razn.errors import CheckpointError, ConfigError
from razn.policy.store import policy_folder, policy_path, record_digest, refine_path
from razn.run_config import RunConfig
from razn.run_dir import RunDirectory
from razn.train.policy_files import policies_exist


def _config(**policy: object) -> RunConfig:
    return from_mapping(
        RunConfig, {"levels": {"downsamples": [4, 2, 1], "patch_size": 64}, "policy": dict(policy)}
    )


def _saved_set(tmp_path, config: RunConfig, lam: float, seed: int | None, levels: int = 2):
    """A policy folder as train_policies leaves it: config.yaml and one file per level."""
    folder = policy_folder(tmp_path / "policies", lam, seed)
    folder.mkdir(parents=True)
    dump_yaml(policy_set_config(config, lam, seed), folder / "config.yaml")
    paths = [policy_path(folder, level) for level in range(levels)]
    paths += [refine_path(folder, level) for level in sorted(config.refine_levels)]
    for path in paths:
        path.write_bytes(b"weights")
        record_digest(path)
    return SimpleNamespace(policies_dir=tmp_path / "policies", num_levels=3), folder


def test_a_policy_set_counts_only_for_the_policy_config_it_was_trained_with(tmp_path):
    config = _config(learning_rate=0.001)
    run, folder = _saved_set(tmp_path, config, 0.01, 1)
    assert policies_exist(run, 0.01, 1)
    assert policies_exist(run, 0.01, 1, policy_set_config(config, 0.01, 1))
    changed = _config(learning_rate=0.0003)
    assert not policies_exist(run, 0.01, 1, policy_set_config(changed, 0.01, 1))
    assert not policies_exist(run, 0.02, 1)  # another λ: another folder
    policy_path(folder, 1).unlink()  # an interrupted training
    assert not policies_exist(run, 0.01, 1, policy_set_config(config, 0.01, 1))


def test_a_set_trained_on_other_inputs_does_not_count(tmp_path):
    image_first = _config()
    assert image_first.policy.inputs == "image" and image_first.decide_first == (True, True)
    run, _ = _saved_set(tmp_path, image_first, 0.01, None)
    assert policies_exist(run, 0.01, None, policy_set_config(image_first, 0.01, None))
    informed = _config(inputs="segmentation")
    assert informed.decide_first == (False, False)
    assert not policies_exist(run, 0.01, None, policy_set_config(informed, 0.01, None))


def test_a_run_config_of_the_gated_version_still_loads(tmp_path):
    """Run folders written before image-first policies hold a ``gate`` section: read, ignored."""
    config = from_mapping(RunConfig, {"gate": {"enabled": True, "precision": 0.95}})
    assert config == RunConfig()


def test_a_policy_changed_after_training_or_without_digests_means_not_trained(tmp_path):
    config = _config()
    run, folder = _saved_set(tmp_path, config, 0.01, None)
    assert policies_exist(run, 0.01, None, policy_set_config(config, 0.01, None))
    policy_path(folder, 0).write_bytes(b"other weights")
    assert not policies_exist(run, 0.01, None)
    (folder / "policies.json").unlink()
    policy_path(folder, 0).write_bytes(b"weights")
    assert not policies_exist(run, 0.01, None)


def test_a_damaged_policy_config_means_not_trained(tmp_path):
    config = _config()
    run, folder = _saved_set(tmp_path, config, 0.01, None)
    (folder / "config.yaml").write_text("policy: [unclosed\n", encoding="utf-8")
    assert not policies_exist(run, 0.01, None, policy_set_config(config, 0.01, None))


def test_policy_sections_may_differ_only_when_allowed(tmp_path):
    run = RunDirectory.create(tmp_path / "run", _config())
    new_policy = _config(learning_rate=0.003, timesteps=100)
    with pytest.raises(
        CheckpointError, match=r"differs at policy\.learning_rate, policy\.timesteps"
    ):
        RunDirectory.open_or_create(run.path, new_policy)
    reopened = RunDirectory.open_or_create(run.path, new_policy, policy_may_differ=True)
    assert reopened.config.policy.learning_rate == 0.003
    assert RunDirectory.open(run.path).config.policy.learning_rate == 0.001  # on disk: unchanged
    other_levels = replace(new_policy, levels=replace(new_policy.levels, patch_size=128))
    with pytest.raises(CheckpointError, match=r"differs at levels\.patch_size\)"):
        RunDirectory.open_or_create(run.path, other_levels, policy_may_differ=True)


def test_only_the_last_decision_level_may_see_f_i():
    last = _config(informed_levels=[-1])
    assert [last.level_inputs(level) for level in range(2)] == ["image", "segmentation"]
    assert last.decide_first == (True, False)
    assert _config(informed_levels=[0]).decide_first == (False, True)
    with pytest.raises(ConfigError, match=r"policy.informed_levels: 2 is not a decision level"):
        _config(informed_levels=[2])


def test_a_set_with_refine_levels_needs_each_refine_policy(tmp_path):
    refining = _config(refine_levels=[-1])
    assert refining.refine_levels == frozenset({1})
    run, folder = _saved_set(tmp_path, refining, 0.01, None)
    assert policies_exist(run, 0.01, None, policy_set_config(refining, 0.01, None))
    refine_path(folder, 1).unlink()  # trained before refinement, or interrupted
    assert not policies_exist(run, 0.01, None, policy_set_config(refining, 0.01, None))
    plain = _config(refine_levels=[])
    assert not policies_exist(run, 0.01, None, policy_set_config(plain, 0.01, None))  # other config
    with pytest.raises(ConfigError, match=r"policy.refine_levels: 2 is not a decision level"):
        _config(refine_levels=[2])
