"""Policies saved as safetensors: the weights of SB3's policy network, nothing pickled.

Stable-Baselines3's own ``.zip`` files hold cloudpickled objects, and unpickling runs
code. razn stores only the policy's ``state_dict`` plus, in the file's metadata, the
observation size, class count and network config needed to rebuild it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from razn.config import from_mapping, to_dict
from razn.digest import file_sha256
from razn.errors import CheckpointError, ConfigError
from razn.observation import ObservationConfig, observation_space
from razn.policy.config import PolicyNetConfig
from razn.policy.features import policy_kwargs
from razn.safe_weights import load_module, read_metadata, save_module

POLICY_FORMAT = "razn-policy/1"
DIGESTS = "policies.json"
"""The file in a policy folder recording the SHA-256 of every policy razn saved there."""
DIGESTS_FORMAT = "razn-policies/1"


def build_policy(
    observation: ObservationConfig,
    num_classes: int,
    net: PolicyNetConfig,
    inputs: str = "image",
):
    """An untrained SB3 ``MultiInputActorCriticPolicy`` for the zoom observation of ``inputs``."""
    from gymnasium import spaces
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    return MultiInputActorCriticPolicy(
        observation_space(observation, num_classes, inputs),
        spaces.Discrete(2),
        lr_schedule=lambda _: 0.0,
        **policy_kwargs(net),
    )


def save_policy(
    policy: Any,
    path: str | Path,
    observation: ObservationConfig,
    num_classes: int,
    net: PolicyNetConfig,
    extra: dict[str, Any] | None = None,
    inputs: str = "image",
) -> Path:
    """Write ``policy`` (an SB3 actor-critic policy seeing ``inputs``) to ``path`` as
    safetensors, atomically."""
    metadata = {
        "format": POLICY_FORMAT,
        "inputs": inputs,
        "observation": json.dumps(to_dict(observation)),
        "num_classes": str(num_classes),
        "net": json.dumps(to_dict(net)),
        "extra": json.dumps(extra or {}),
    }
    return save_module(policy, path, metadata)


def load_policy(path: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild a policy written by :func:`save_policy`; returns it (eval mode) and its extras."""
    metadata = read_metadata(path, POLICY_FORMAT, "policy")
    try:
        observation = from_mapping(
            ObservationConfig, json.loads(metadata["observation"]), str(path)
        )
        net = from_mapping(PolicyNetConfig, json.loads(metadata["net"]), str(path))
        # Files written before image-first policies hold no "inputs": they saw f_i's output.
        inputs = metadata.get("inputs", "segmentation")
        policy = build_policy(observation, int(metadata["num_classes"]), net, inputs)
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"policy metadata is damaged: {exc}", path) from None
    load_module(policy, path, "policy")
    policy.set_training_mode(False)
    return policy.to(device), extra


def policy_folder(policies_dir: Path, lam: float, seed: int | None = None) -> Path:
    """Where a run keeps the policies trained for λ = ``lam``: ``RUN/policies/lam_<λ>/``,
    or ``lam_<λ>_seed_<s>/`` for those trained with their own ``policy.seed``."""
    name = f"lam_{lam:g}" if seed is None else f"lam_{lam:g}_seed_{seed}"
    return Path(policies_dir) / name


def policy_path(folder: Path, level: int) -> Path:
    """The file of g_``level`` in a policy folder."""
    return Path(folder) / f"level_{level}.safetensors"


def refine_path(folder: Path, level: int) -> Path:
    """The file of h_``level``, the refine policy of a refine level, in a policy folder."""
    return Path(folder) / f"refine_{level}.safetensors"


def record_digest(path: Path) -> None:
    """Record the SHA-256 of the policy file ``path`` in its folder's ``policies.json``."""
    path = Path(path)
    digests = _read_digests(path.parent) or {"format": DIGESTS_FORMAT, "sha256": {}}
    digests["sha256"][path.name] = file_sha256(path)
    target = path.parent / DIGESTS
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(digests, indent=2, sort_keys=True), encoding="utf-8")
    partial.replace(target)


def verify_digest(path: Path) -> None:
    """Refuse a policy file whose SHA-256 is not the one razn recorded when it saved it."""
    path = Path(path)
    if not path.is_file():
        return  # load_policy names the missing file
    digests = _read_digests(path.parent)
    if digests is None:
        raise CheckpointError(
            f"no readable {DIGESTS} beside it (the SHA-256 razn records for every policy it "
            "saves): not trained by this version of razn; retrain with razn train-policy",
            path,
        )
    recorded = digests["sha256"].get(path.name)
    if recorded is None or file_sha256(path) != recorded:
        raise CheckpointError(
            f"does not match the SHA-256 recorded in {DIGESTS}: it was modified or replaced "
            "— retrain the level (razn train-policy) or restore the file",
            path,
        )


def _read_digests(folder: Path) -> dict[str, Any] | None:
    try:
        digests = json.loads((Path(folder) / DIGESTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    valid = (
        isinstance(digests, dict)
        and digests.get("format") == DIGESTS_FORMAT
        and isinstance(digests.get("sha256"), dict)
    )
    return digests if valid else None


def load_policies(folder: Path, num_levels: int, device: str = "cpu") -> dict[int, Any]:
    """g_0 … g_{m−1} from ``folder``; a missing level is an error naming the file."""
    folder = Path(folder)
    if not folder.is_dir():
        trained = (
            sorted(p.name for p in folder.parent.glob("lam_*")) if folder.parent.is_dir() else []
        )
        raise CheckpointError(
            "no policies trained for this λ"
            + (f"; trained: {', '.join(trained)}" if trained else "; run razn train-policy first"),
            folder,
        )
    paths = [policy_path(folder, level) for level in range(num_levels - 1)]
    for path in paths:
        verify_digest(path)  # before the file is parsed at all
    return {level: load_policy(path, device)[0] for level, path in enumerate(paths)}


def load_refiners(folder: Path, levels: Iterable[int], device: str = "cpu") -> dict[int, Any]:
    """h_i of every refine level in ``levels`` from ``folder``; a missing one is an error
    naming the file."""
    paths = {level: refine_path(Path(folder), level) for level in sorted(levels)}
    for path in paths.values():
        verify_digest(path)
    return {level: load_policy(path, device)[0] for level, path in paths.items()}


def refine_levels_of(folder: Path) -> list[int]:
    """The refine levels a policy folder holds an h_i for."""
    names = (p.stem for p in Path(folder).glob("refine_*.safetensors"))
    return sorted(int(n.split("_")[1]) for n in names if n.split("_")[1].isdigit())
