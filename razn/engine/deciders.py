"""Decision functions: the only thing that differs between razn and its baselines.

A decider answers, for a batch of nodes of one working level, which to zoom and
with what probability. What it ``observes`` sets what the engine does before asking:

* ``nothing`` (``ud``, ``cip``, ``fixed-i``, ``random``, ``oracle``): asked before
  anything is read, so a baseline never pays for reads or segmentations it does not use;
* ``image`` (razn's default policies): asked after the patches are read and before f_i
  runs; f_i segments only the patches it breaks;
* ``segmentation`` (``uncertainty``, policies trained with ``policy.inputs:
  segmentation``): asked after f_i has segmented every patch, with the observation built
  from its output (:mod:`razn.observation`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from razn.errors import RaznError
from razn.geometry import Node

Decision = tuple[np.ndarray, np.ndarray]
"""``(zoom: bool (N,), zoom_probability: float32 (N,))``."""


OBSERVES = ("nothing", "image", "segmentation")
"""What a decider may observe before deciding (see the module docstring)."""


class Decider(Protocol):
    """Chooses zoom (True) or break (False) for nodes of one level."""

    name: str
    observes: str
    """One of :data:`OBSERVES`."""

    def decide(
        self, level: int, nodes: Sequence[Node], observations: dict[str, np.ndarray] | None
    ) -> Decision:
        """Decisions for ``nodes`` of ``level`` (observations given iff needed, in node order)."""
        ...


def refine_levels(decider: Decider) -> frozenset[int]:
    """The levels at which ``decider`` refines its breaks: its ``refine_quadrants(level,
    quadrants, observations)`` then decides, for the r² quadrants of every patch it broke
    (level-``level + 1`` nodes), which are segmented again one level finer."""
    return frozenset(getattr(decider, "refine_levels", ()))


def refine_observes(decider: Decider) -> str:
    """What ``decider``'s refine decisions observe: ``segmentation`` (the quadrants' views of
    f_i's output) or ``nothing`` (decisions fixed in advance)."""
    return str(getattr(decider, "refine_observes", "nothing"))


def _constant(count: int, zoom: bool) -> Decision:
    return np.full(count, zoom), np.full(count, float(zoom), np.float32)


@dataclass
class FixedLevel:
    """Zoom every node above ``level`` and break there: ``ud`` is level 0, ``cip`` the finest."""

    level: int
    name: str = "fixed"
    observes: str = "nothing"

    def decide(
        self, level: int, nodes: Sequence[Node], observations: dict[str, np.ndarray] | None
    ) -> Decision:
        return _constant(len(nodes), level < self.level)


@dataclass
class RandomZoom:
    """Zoom each node with probability ``probability[level]`` (seeded)."""

    probability: Sequence[float]
    seed: int = 0
    name: str = "random"
    observes: str = "nothing"
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Restart the generator from ``seed`` (the engine does so at every slide, so a
        slide's decisions do not depend on which slides went before it)."""
        self._rng = np.random.default_rng(self.seed)

    def decide(
        self, level: int, nodes: Sequence[Node], observations: dict[str, np.ndarray] | None
    ) -> Decision:
        p = float(self.probability[level])
        return self._rng.random(len(nodes)) < p, np.full(len(nodes), p, np.float32)


@dataclass
class UncertaintyThreshold:
    """Zoom where f_i's mean normalised entropy exceeds ``thresholds[level]``."""

    thresholds: Sequence[float]
    name: str = "uncertainty"
    observes: str = "segmentation"

    def decide(
        self, level: int, nodes: Sequence[Node], observations: dict[str, np.ndarray] | None
    ) -> Decision:
        if observations is None:
            raise RaznError("the uncertainty decider needs observations")
        entropy = observations["stats"][:, 0]
        return entropy > self.thresholds[level], entropy.astype(np.float32)


@dataclass
class PolicyDecider:
    """The learned policies g_i (Stable-Baselines3): zoom where P(zoom) > 0.5.

    ``observes`` follows what the policies were trained on (:func:`level_inputs`): by
    default the image alone, so the engine runs f_i only on the patches they break.
    """

    policies: Mapping[int, object]
    name: str = "razn"
    observes: str = field(default="")
    observes_by_level: dict[int, str] = field(default_factory=dict)
    """What each level's policy observes, when they differ (``policy.informed_levels``)."""
    refiners: Mapping[int, object] = field(default_factory=dict)
    """h_i of the refine levels: refine or keep each quadrant of a patch g_i broke."""
    refine_observes: str = "segmentation"

    @property
    def refine_levels(self) -> frozenset[int]:
        return frozenset(self.refiners)

    def refine_quadrants(
        self, level: int, quadrants: Sequence[Node], observations: dict[str, np.ndarray] | None
    ) -> Decision:
        """h_``level``'s refine decisions for ``quadrants`` (level-``level + 1`` nodes cut
        from patches g_``level`` broke), from their ``segmentation`` observations."""
        if observations is None:
            raise RaznError("the refine policy needs observations")
        probability = zoom_probability(self.refiners[level], observations)
        return probability > 0.5, probability

    def __post_init__(self) -> None:
        if not self.observes_by_level:
            self.observes_by_level = level_inputs(self.policies)
        if not self.observes:
            seen = set(self.observes_by_level.values()) or {"image"}
            self.observes = seen.pop() if len(seen) == 1 else "per level"

    def decide(
        self, level: int, nodes: Sequence[Node], observations: dict[str, np.ndarray] | None
    ) -> Decision:
        if observations is None:
            raise RaznError("the policy decider needs observations")
        policy = self.policies.get(level)
        if policy is None:  # no policy at this level: break
            return _constant(len(nodes), False)
        probability = zoom_probability(policy, observations)
        return probability > 0.5, probability


def level_inputs(policies: Mapping[int, object]) -> dict[int, str]:
    """What each of the SB3 ``policies`` observes, ``image`` or ``segmentation``, by level."""
    from razn.observation import space_inputs

    return {level: space_inputs(p.observation_space) for level, p in policies.items()}  # type: ignore[attr-defined]


def observes_at(decider: Decider, level: int) -> str:
    """What ``decider`` observes at ``level`` (a policy set may differ level by level)."""
    by_level = getattr(decider, "observes_by_level", None)
    if by_level and level in by_level:
        return str(by_level[level])
    return decider.observes


@dataclass
class PlannedZoom:
    """Decisions fixed in advance per node, e.g. the ``oracle``'s from ground truth.

    ``zoom[level]`` is a bool array ``(R, n, n)`` over the descendants at ``level`` of
    the roots ``roots[k] = (col, row)`` (the layout of :mod:`razn.rewards`, ``n = r^level``);
    a node outside every listed root breaks.
    """

    roots: np.ndarray
    zoom: Mapping[int, np.ndarray]
    rate: int
    name: str = "oracle"
    observes: str = "nothing"
    refine: Mapping[int, np.ndarray] = field(default_factory=dict)
    """Per refine level ``i``, the quadrants refined, bool on the level-``i + 1`` grid."""
    refine_observes: str = "nothing"

    def __post_init__(self) -> None:
        self._root_index = {(int(c), int(r)): k for k, (c, r) in enumerate(self.roots)}
        self.refine_levels = frozenset(self.refine)

    def decide(
        self, level: int, nodes: Sequence[Node], observations: dict[str, np.ndarray] | None
    ) -> Decision:
        zoom = self._look_up(self.zoom.get(level), level, nodes)
        return zoom, zoom.astype(np.float32)

    def refine_quadrants(
        self, level: int, quadrants: Sequence[Node], observations: dict[str, np.ndarray] | None
    ) -> Decision:
        refined = self._look_up(self.refine.get(level), level + 1, quadrants)
        return refined, refined.astype(np.float32)

    def _look_up(self, planned: np.ndarray | None, level: int, nodes: Sequence[Node]) -> np.ndarray:
        decided = np.zeros(len(nodes), bool)
        if planned is not None:
            n = self.rate**level
            for i, node in enumerate(nodes):
                k = self._root_index.get((node.col // n, node.row // n))
                if k is not None:
                    decided[i] = bool(planned[k, node.row % n, node.col % n])
        return decided


def zoom_probability(policy: object, observations: dict[str, np.ndarray]) -> np.ndarray:
    """P(zoom) of an SB3 policy (``model.policy``) for a batch of observations."""
    import torch

    with torch.inference_mode():
        tensor, _ = policy.obs_to_tensor(observations)  # type: ignore[attr-defined]
        distribution = policy.get_distribution(tensor)  # type: ignore[attr-defined]
        return distribution.distribution.probs[:, 1].float().cpu().numpy()
