"""``razn/Zoom-v0``: decide zoom or break for patches of one working level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.reward_cache import LevelTable, read_tables
from razn.observation import TISSUE_STAT, ObservationConfig, observation_space, policy_view
from razn.rewards import DecideFirst, Refinement, RewardConfig, refine_rewards, zoom_gain

SAMPLINGS = ("uniform", "balanced", "stratified")
"""How the environment draws its patches (see :class:`ZoomEnv`'s *Starting State*)."""
KINDS = ("zoom", "refine")
"""What the environment's policy decides: g_i's zoom or break of a patch, or h_i's refine
or keep of a quadrant of a patch g_i broke."""


class ZoomEnv(gym.Env):
    """Zoom or break, for the patches of one working level of a tiled slide pyramid.

    ## Description
    RAZN segments a whole-slide image level by level: a policy g_i looks at a patch
    at working level L_i and either **breaks** (f_i's segmentation of the patch is
    final) or **zooms** (the area is read again at r× the resolution as r² patches
    for level i+1). This environment serves one level i. Each step shows one patch
    (a node of the zoom tree of a training slide) and rewards the decision. Patches
    come from a reward cache built once per slide (see :mod:`envs.reward_cache`), so a
    step is an array look-up.

    With ``kind="refine"`` it serves h_i instead, the refine policy of a refine level
    (``policy.refine_levels``): each step shows one tissue quadrant of a patch g_i broke,
    as f_i's output and the pixels cut from that patch, and rewards sending it to level
    i+1 against keeping f_i's labels there.

    ## Action Space
    ``Discrete(2)``: 0 = break, 1 = zoom (``refine``: 0 = keep, 1 = refine).

    ## Observation Space
    With ``inputs="image"`` (the default: the policy decides before f_i runs), ``Dict`` of
    ``"image"`` ``Box(0, 255, (3, S, S), uint8)`` (the patch, area-downsized) and
    ``"stats"`` ``Box(0, 1, (8,), float32)`` (tissue share, colour and texture of the view).
    With ``inputs="segmentation"`` also ``"seg"`` ``Box(0, 255, (K, S, S), uint8)`` (f_i's
    normalised entropy and foreground probabilities), and ``"stats"`` ``Box(0, 1, (5 + K,),
    float32)`` summarise f_i's output and the tissue share; see :mod:`razn.observation`.
    ``kind="refine"`` always sees that ``segmentation`` observation, of the quadrant.

    ## Rewards
    Break: 0. Zoom: ``(err_break − err_zoom) / A − λ · cost_zoom`` where ``err_break``
    counts the pixels f_i gets wrong in the patch, ``err_zoom`` those its children get
    wrong when each follows the next level's policy (or f_{i+1} alone when level i+1
    is the finest or has no policy yet), ``A`` the pixels of one finest-level patch at
    the evaluation resolution (the same unit at every level), and
    ``cost_zoom`` the segmentations and policy calls the zoom adds over breaking, in
    units of one patch segmentation (with ``inputs="image"`` a zoom saves the patch's
    own segmentation; see :mod:`razn.rewards`). At a refine level, breaking includes the
    quadrants h_i refines (``refinement``). ``refine``: keep 0, refine
    ``(err_parent − err_child) / A − λ · cost_child`` (:func:`razn.rewards.refine_rewards`).

    ## Starting State
    A patch drawn from the cached patches of the level that hold tissue, the only ones the
    engine asks about: uniformly (``sampling="uniform"``), or half from patches where zooming
    pays and half from the rest (``"balanced"``; a policy then learns the shape of the few
    paying patches from as many samples as the rest, but its optimum moves towards zooming),
    or drawn as ``"balanced"`` with each reward weighted by ``2 × its pool's share of the
    patches`` (``"stratified"``: every policy's expected reward per step is the uniform
    one, so the optimum is the uniform sampling's, reached with more samples of the rare
    side).

    ## Episode End
    Decisions do not change later patches (a contextual bandit), so an episode is
    ``episode_length`` independent patches; it terminates after the last one.

    ## Arguments
    * ``cache``: slide cache paths (``.zarr``) or already loaded ``(tables, roots)``.
    * ``level``: the working level i (0 = coarsest; must be below the finest).
    * ``reward``: λ and the policy-call cost (:class:`razn.rewards.RewardConfig`).
    * ``observation``: the observation size (:class:`razn.observation.ObservationConfig`).
    * ``rate``: the zoom rate r.
    * ``zoom``: decisions of the trained policies of deeper levels, ``{level: bool array
      (R, n, n)}`` over the same cached nodes; missing levels break.
    * ``episode_length``, ``sampling``: as above.
    * ``unit_area``: ``A`` (keyword only; ``RunConfig.reward_unit_area``).
    * ``inputs``: ``image`` or ``segmentation``, what the policy sees (keyword only).
    * ``decide_first``: the cost model of every level (:mod:`razn.rewards`; keyword only;
      default: every level as ``inputs`` says).
    * ``refinement``: the refine levels and the trained refine decisions below and at
      ``level`` (:class:`razn.rewards.Refinement`; keyword only; default none).
    * ``kind``: ``zoom`` (g_i) or ``refine`` (h_i; keyword only).

    ## Version History
    * v0: initial version; ``inputs`` added with image-first policies (default ``image``);
      ``refinement`` and ``kind`` added with refine levels.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - Gymnasium's convention

    def __init__(
        self,
        cache: Sequence[str | Path] | tuple[list[LevelTable], Any],
        level: int,
        reward: RewardConfig | None = None,
        observation: ObservationConfig | None = None,
        rate: int = 2,
        zoom: Mapping[int, np.ndarray] | None = None,
        episode_length: int = 64,
        sampling: Literal["uniform", "balanced", "stratified"] = "uniform",
        *,
        unit_area: float,
        inputs: str = "image",
        decide_first: DecideFirst | None = None,
        refinement: Refinement | None = None,
        kind: str = "zoom",
    ):
        tables = cache[0] if isinstance(cache, tuple) else read_tables([Path(p) for p in cache])[0]
        if not 0 <= level < len(tables) - 1:
            raise ValueError(
                f"level must be in 0..{len(tables) - 2} (below the finest), got {level}"
            )
        if episode_length < 1:
            raise ValueError(f"episode_length must be positive, got {episode_length}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.level = level
        self.kind = kind
        self.reward_config = reward or RewardConfig()
        self.episode_length = episode_length
        self.sampling = sampling
        cost_model = decide_first if decide_first is not None else inputs == "image"
        if kind == "refine":
            if refinement is None or level not in refinement.levels:
                raise ValueError(f"level {level} is not a refine level")
            inputs = "segmentation"
            shown = tables[level + 1].parent_observations
            rewards = quadrant_rewards(
                tables,
                level,
                rate,
                zoom or {},
                self.reward_config,
                unit_area,
                refinement,
                cost_model,
            )
            keep = np.asarray(refinement.tissue[level + 1], bool).reshape(-1)
        else:
            shown = policy_view(tables[level].observations, inputs)
            rewards = zoom_rewards(
                tables,
                level,
                rate,
                zoom or {},
                self.reward_config,
                unit_area,
                cost_model,
                refinement,
            )
            # Only nodes holding tissue: the engine never asks about the others, and their
            # reward (nothing fixed, nothing spent) would only dilute the samples.
            keep = np.asarray(cached_tissue(tables)[level], bool).reshape(-1)
        self._observations = {k: _flat(v, 3)[keep] for k, v in shown.items()}
        self.rewards = _flat(rewards, 3)[keep]
        if len(self.rewards) == 0:
            raise ValueError("the reward cache holds no patches (no tissue in its slides?)")
        num_classes = tables[0].observations["seg"].shape[-3]
        self.observation_space = observation_space(
            observation or ObservationConfig(), num_classes, inputs
        )
        self.action_space = spaces.Discrete(2)
        self._pools = _sampling_pools(self.rewards, sampling)
        self._weights = _pool_weights(self._pools, len(self.rewards), sampling)
        self._pool = 0
        self._index = 0
        self._step = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self._step = 0
        self._index = self._draw()
        return self._observation(), {"node": self._index}

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 (break) or 1 (zoom), got {action!r}")
        zoom_value = float(self.rewards[self._index])
        reward = zoom_value * self._weights[self._pool] if int(action) == 1 else 0.0
        info = {"node": self._index, "zoom_reward": zoom_value, "zoomed": int(action) == 1}
        self._step += 1
        terminated = self._step >= self.episode_length
        if not terminated:
            self._index = self._draw()
        return self._observation(), reward, terminated, False, info

    @property
    def num_patches(self) -> int:
        return len(self.rewards)

    def samples(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every patch the environment draws from: observations ``(N, …)`` and the reward of
        zooming each ``(N,)`` (breaking earns 0), unweighted by the sampling."""
        return self._observations, self.rewards

    def _draw(self) -> int:
        self._pool = int(self.np_random.integers(len(self._pools)))
        pool = self._pools[self._pool]
        return int(pool[self.np_random.integers(len(pool))])

    def _observation(self) -> dict[str, np.ndarray]:
        # Copies: callers (SB3 buffers) keep what they are given.
        return {key: values[self._index].copy() for key, values in self._observations.items()}


def zoom_rewards(
    tables: Sequence[LevelTable],
    level: int,
    rate: int,
    zoom: Mapping[int, np.ndarray],
    config: RewardConfig,
    unit_area: float,
    decide_first: DecideFirst = True,
    refinement: Refinement | None = None,
) -> np.ndarray:
    """The reward of zooming every cached node of ``level``, ``(R, n, n)``; ``decide_first``
    is the cost model and ``refinement`` what breaking refines (:mod:`razn.rewards`); nodes
    without tissue cost nothing (:func:`cached_tissue`)."""
    return zoom_gain(
        [t.errors for t in tables],
        tables[level].area,
        zoom,
        level,
        rate,
        config,
        unit_area,
        decide_first,
        refinement,
        cached_tissue(tables),
    )


def quadrant_rewards(
    tables: Sequence[LevelTable],
    level: int,
    rate: int,
    zoom: Mapping[int, np.ndarray],
    config: RewardConfig,
    unit_area: float,
    refinement: Refinement,
    decide_first: DecideFirst = True,
) -> np.ndarray:
    """h_``level``'s reward of refining every cached quadrant, on the level-``level + 1``
    grid (:func:`razn.rewards.refine_rewards`)."""
    errors = [t.errors for t in tables]
    area = tables[level + 1].area
    return refine_rewards(
        errors,
        area,
        zoom,
        level,
        rate,
        config,
        unit_area,
        refinement,
        decide_first,
        cached_tissue(tables),
    )


def cached_tissue(tables: Sequence[LevelTable]) -> list[np.ndarray]:
    """Per working level, the cached nodes holding tissue, bool ``(R, n, n)``, as the engine
    tests them: every cached root does (the cache keeps tissue roots only), and a node of a
    finer level does where its parent's tissue sample has any inside it (a table without
    its parents' views, e.g. one built by hand, counts every node as tissue)."""
    return [np.ones(tables[0].errors.shape, bool)] + [
        np.asarray(t.parent_observations["stats"][..., TISSUE_STAT] > 0)
        if "stats" in t.parent_observations
        else np.ones(t.errors.shape, bool)
        for t in tables[1:]
    ]


def cached_refinement(
    tables: Sequence[LevelTable],
    levels: frozenset[int],
    refine: Mapping[int, np.ndarray] | None = None,
) -> Refinement | None:
    """The :class:`razn.rewards.Refinement` of cached trees for the refine ``levels`` (None
    when there are none): f's errors per quadrant and the tissue quadrants h is asked about,
    from the parents' cached views, as the engine decides them."""
    if not levels:
        return None
    return Refinement(
        frozenset(levels),
        [t.parent_errors for t in tables],
        cached_tissue(tables),
        dict(refine or {}),
    )


def _flat(values: np.ndarray, leading: int) -> np.ndarray:
    return values.reshape(-1, *values.shape[leading:])


def _sampling_pools(rewards: np.ndarray, sampling: str) -> list[np.ndarray]:
    everything = np.arange(len(rewards))
    if sampling == "uniform":
        return [everything]
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    pays = everything[rewards > 0]
    rest = everything[rewards <= 0]
    return [pool for pool in (pays, rest) if len(pool)] or [everything]


def _pool_weights(pools: Sequence[np.ndarray], total: int, sampling: str) -> list[float]:
    """The reward weight of each pool: 1, or with ``stratified`` the pool's share of the
    patches over its share of the draws, so a step's expected reward is the uniform one."""
    if sampling != "stratified":
        return [1.0] * len(pools)
    return [len(pool) / total * len(pools) for pool in pools]
