"""The zoom reward and the outcome of following policies down a patch's subtree. Pure numpy.

Nodes of one working level are held as arrays of shape ``(R, n, n)``: ``R`` root
patches and, under each, the ``n × n`` grid of its descendants at that level
(``n = r^level``). The children of ``[k, y, x]`` at level ``j`` are the ``r × r``
block ``[k, r·y : r·y + r, r·x : r·x + r]`` at level ``j + 1``, so summing over
children is a reshape.

Reward (``docs/method.md``): zooming a node is worth the errors it removes minus what it
costs, ``(err_break − err_zoom) / A − λ · cost_zoom``; breaking is worth 0.
``err`` counts misclassified, non-ignored pixels at the evaluation resolution, and
``A`` is one **fixed unit of area for every level**: the pixels of one finest-level
patch at the evaluation resolution (:func:`reward_unit_area`). A pixel fixed is then
worth the same whichever level zooms to fix it, so one λ sets one exchange rate
between pixels and compute across the whole tree: a zoom pays when it fixes more
than ``λ · cost_zoom`` finest-patch areas. (Dividing by each node's own area instead
would value a pixel fixed at level i ``r²`` times more than one fixed at level i−1;
measured on cached validation trees, the oracle of that reward needed up to 1.6× the
segmentations for the same error.)
``cost_zoom`` is the extra compute of zooming in units of one patch segmentation:
the segmentations in the zoomed subtree plus ``policy_cost`` per policy call in it,
less what breaking would have cost. How much that is depends on what the policies see
(``decide_first``):

* **image-first** (``decide_first=True``, the default): g_i decides from the patch
  alone and f_i runs only where it breaks, so a zoom saves the node's own segmentation
  (``cost_zoom = subtree − 1``) and a zoomed node deeper down costs only its children;
* **f_i first** (``decide_first=False``): f_i runs before every decision because the
  policy sees its output, so breaking adds nothing (``cost_zoom = subtree``) and every
  zoomed node deeper down pays its own segmentation besides its children's.

``decide_first`` is one bool for every level or one per decision level (a run may let
only its last decision level see f_i's output: ``policy.informed_levels``).

**Tissue** (``tissue``, per working level): the engine never reads, segments or asks a
policy about a node without tissue (it is background for free), so such a node costs
nothing in the counts above: a zoom at the edge of the tissue pays only for the children
that hold tissue. Counting every child alike overcharged exactly the zooms along tissue
borders (on the benchmark a fifth of the finest children of tissue nodes hold none) and,
at a refine level, favoured a break plus refinement, which counted only tissue quadrants,
over a zoom that costs the same or less.

**Refinement** (``policy.refine_levels``): at a refine level ``j`` a node that breaks is
not the end of its area. f_j's output is already there, so a second policy h_j looks at
it quadrant by quadrant and *refines* the quadrants worth it: each becomes a node of
level ``j + 1`` (which follows g_{j+1} as any child does), the others keep f_j's labels.
A break then costs ``1`` segmentation plus the refined subtrees and one h_j call per
tissue quadrant, and its error is the children's where refined and f_j's own
(``parent_errors``: f_j's errors inside each level-``j + 1`` node's area) elsewhere.
Nothing segmented is thrown away: a zoom pays ``r²`` patches, a break that refines ``k``
quadrants ``1 + k``. The reward of refining a quadrant is
``(parent_err − err_child) / A − λ · cost_child`` (:func:`refine_rewards`), and g_j's zoom
reward compares the zoom with that refined break (:func:`zoom_rewards_over`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from razn.config import check_range

DecideFirst = bool | Sequence[bool]
"""The cost model: one value for every decision level, or one per decision level."""

Tissue = Sequence[np.ndarray] | None
"""Per working level, which nodes hold tissue, bool ``(R, n, n)``; None: every node does."""


def node_costs(tissue: Tissue, errors: Sequence[np.ndarray], level: int) -> np.ndarray:
    """1 for each node of ``level`` that the engine would read (it holds tissue), else 0."""
    if tissue is None:
        return np.ones(errors[level].shape, np.int64)
    return np.asarray(tissue[level], bool).astype(np.int64)


def decides_first(decide_first: DecideFirst, level: int) -> bool:
    """Whether level ``level``'s policy decides before f_level runs."""
    if isinstance(decide_first, bool | np.bool_):
        return bool(decide_first)
    return bool(decide_first[level])


@dataclass(frozen=True)
class RewardConfig:
    """The accuracy-versus-compute trade-off the policies learn."""

    lam: float = 0.01
    """λ: finest-patch areas of pixels that one patch segmentation must fix to be worth it."""
    policy_cost: float = 0.1
    """Cost of one policy call relative to one patch segmentation."""

    def __post_init__(self) -> None:
        check_range("reward.lam", self.lam, low=0)
        check_range("reward.policy_cost", self.policy_cost, low=0)


@dataclass(frozen=True)
class SubtreeOutcome:
    """What happens under nodes of one level when every node follows the policies below.

    Attributes:
        errors: misclassified pixels in each node's area, ``(R, n, n)``.
        segmentations: patch segmentations run in each node's subtree (1 if it breaks).
        policy_calls: policy calls made in each node's subtree, the node's own included.
    """

    errors: np.ndarray
    segmentations: np.ndarray
    policy_calls: np.ndarray


def sum_children(values: np.ndarray, rate: int) -> np.ndarray:
    """Sum ``(R, n·r, n·r)`` child values into their ``(R, n, n)`` parents."""
    roots, size, _ = values.shape
    n = size // rate
    return values.reshape(roots, n, rate, n, rate).sum(axis=(2, 4))


@dataclass(frozen=True)
class Refinement:
    """What refinement needs over cached trees (see the module docstring).

    Attributes:
        levels: the refine levels (a node of one that breaks asks h_j about its quadrants).
        parent_errors: per level ``j``, f_{j−1}'s misclassified pixels inside each node's
            area, ``(R, n, n)`` like ``errors[j]`` (entry 0 is unused: roots have no parent).
        tissue: per level, which nodes hold tissue ``(R, n, n)`` bool: h_j is asked about,
            and may refine, only those.
        refine: per refine level ``j``, its decisions on the level-``j + 1`` grid; a refine
            level missing here refines nothing (its calls are still counted).
    """

    levels: frozenset[int]
    parent_errors: Sequence[np.ndarray | None]
    tissue: Sequence[np.ndarray]
    refine: Mapping[int, np.ndarray] = field(default_factory=dict)

    def with_refine(self, level: int, decisions: np.ndarray) -> Refinement:
        """A copy with h_``level``'s decisions set."""
        return Refinement(
            self.levels, self.parent_errors, self.tissue, {**self.refine, level: decisions}
        )

    def chosen(self, level: int) -> np.ndarray:
        """The level-``level + 1`` nodes h_``level`` refines (tissue only), bool."""
        tissue = np.asarray(self.tissue[level + 1], bool)
        decided = self.refine.get(level)
        return np.zeros_like(tissue) if decided is None else tissue & np.asarray(decided, bool)


def break_outcome(
    errors: Sequence[np.ndarray],
    children: SubtreeOutcome | None,
    level: int,
    rate: int,
    refinement: Refinement | None = None,
    tissue: Tissue = None,
) -> SubtreeOutcome:
    """Outcome of *breaking* every node at ``level``: f_level's segmentation alone (of the
    nodes holding ``tissue``), or at a refine level also the quadrants h_level refines, each
    following the policies below as ``children`` (the level-``level + 1`` outcome) says.
    Policy calls: h's only."""
    own = node_costs(tissue, errors, level)
    if refinement is None or level not in refinement.levels:
        shape = errors[level].shape
        return SubtreeOutcome(errors[level].astype(np.float64), own, np.zeros(shape, np.int64))
    if children is None:
        raise ValueError(f"level {level} refines but has no level below it")
    parent = refinement.parent_errors[level + 1]
    if parent is None:
        raise ValueError(f"refinement at level {level} needs f_{level}'s errors per quadrant")
    chosen = refinement.chosen(level)
    asked = np.asarray(refinement.tissue[level + 1], bool).astype(np.int64)
    return SubtreeOutcome(
        sum_children(np.where(chosen, children.errors, parent), rate),
        own + sum_children(np.where(chosen, children.segmentations, 0), rate),
        sum_children(asked + np.where(chosen, children.policy_calls, 0), rate),
    )


def follow_policies(
    errors: Sequence[np.ndarray],
    zoom: Mapping[int, np.ndarray],
    level: int,
    rate: int,
    decide_first: DecideFirst = True,
    refinement: Refinement | None = None,
    tissue: Tissue = None,
) -> SubtreeOutcome:
    """Outcome for nodes at ``level`` when each level ``j >= level`` zooms where ``zoom[j]``.

    Args:
        errors: per working level ``j``, the error of f_j breaking at each node, ``(R, r^j, r^j)``.
        zoom: per level with a policy, its decisions (bool, same shape as ``errors[j]``);
            a level missing from ``zoom`` has no policy and always breaks.
        level: the level whose nodes are reported.
        rate: the zoom rate ``r``.
        decide_first: the policies decide before f_j runs (a zoomed node is not segmented);
            False: every node a policy decides is segmented first.
        refinement: the refine levels and their decisions (None: no level refines).
        tissue: per working level, the nodes holding tissue: only those cost segmentations
            and policy calls (None: every node does).
    """
    finest = len(errors) - 1
    outcome = SubtreeOutcome(
        errors[finest].astype(np.float64),
        node_costs(tissue, errors, finest),
        np.zeros(errors[finest].shape, np.int64),
    )
    for j in range(finest - 1, level - 1, -1):
        decided = zoom.get(j)
        has_policy = decided is not None
        zoomed = np.zeros(errors[j].shape, bool) if decided is None else np.asarray(decided, bool)
        broke = break_outcome(errors, outcome, j, rate, refinement, tissue)
        own = node_costs(tissue, errors, j)
        outcome = SubtreeOutcome(
            np.where(zoomed, sum_children(outcome.errors, rate), broke.errors),
            np.where(
                zoomed,
                sum_children(outcome.segmentations, rate)
                + own * int(not decides_first(decide_first, j)),
                broke.segmentations,
            ),
            np.where(zoomed, sum_children(outcome.policy_calls, rate), broke.policy_calls)
            + own * int(has_policy),
        )
    return outcome


def zoom_outcome(
    errors: Sequence[np.ndarray],
    zoom: Mapping[int, np.ndarray],
    level: int,
    rate: int,
    decide_first: DecideFirst = True,
    refinement: Refinement | None = None,
    tissue: Tissue = None,
) -> SubtreeOutcome:
    """Outcome of *zooming* every node at ``level``: its children follow the policies below
    (see :func:`follow_policies`)."""
    children = follow_policies(errors, zoom, level + 1, rate, decide_first, refinement, tissue)
    return SubtreeOutcome(
        sum_children(children.errors, rate),
        sum_children(children.segmentations, rate),
        sum_children(children.policy_calls, rate),
    )


def _compute(outcome: SubtreeOutcome, config: RewardConfig) -> np.ndarray:
    """Patch segmentations plus ``policy_cost`` per policy call."""
    return outcome.segmentations + config.policy_cost * outcome.policy_calls


def zoom_gain(
    errors: Sequence[np.ndarray],
    area: np.ndarray,
    zoom: Mapping[int, np.ndarray],
    level: int,
    rate: int,
    config: RewardConfig,
    unit_area: float,
    decide_first: DecideFirst = True,
    refinement: Refinement | None = None,
    tissue: Tissue = None,
) -> np.ndarray:
    """g_``level``'s reward of zooming every node, ``(R, n, n)``: the errors the zoom removes
    and the compute it adds, both against breaking (with the refinement a break makes at a
    refine level); the levels below follow ``zoom`` and ``refinement``; only nodes holding
    ``tissue`` cost anything."""
    children = follow_policies(errors, zoom, level + 1, rate, decide_first, refinement, tissue)
    own = node_costs(tissue, errors, level)
    zoomed = SubtreeOutcome(
        sum_children(children.errors, rate),
        sum_children(children.segmentations, rate)
        + own * int(not decides_first(decide_first, level)),
        sum_children(children.policy_calls, rate),
    )
    broke = break_outcome(errors, children, level, rate, refinement, tissue)
    cost = _compute(zoomed, config) - _compute(broke, config)
    return zoom_reward(broke.errors, zoomed.errors, area, cost, config.lam, unit_area)


def refine_rewards(
    errors: Sequence[np.ndarray],
    area: np.ndarray,
    zoom: Mapping[int, np.ndarray],
    level: int,
    rate: int,
    config: RewardConfig,
    unit_area: float,
    refinement: Refinement,
    decide_first: DecideFirst = True,
    tissue: Tissue = None,
) -> np.ndarray:
    """h_``level``'s reward of refining every quadrant, on the level-``level + 1`` grid
    ``(R, n·r, n·r)``: f_level's errors there that the quadrant's subtree removes, minus λ
    times that subtree's compute; ``area`` is the scored pixels of each quadrant."""
    parent = refinement.parent_errors[level + 1]
    if parent is None:
        raise ValueError(f"refinement at level {level} needs f_{level}'s errors per quadrant")
    child = follow_policies(errors, zoom, level + 1, rate, decide_first, refinement, tissue)
    return zoom_reward(parent, child.errors, area, _compute(child, config), config.lam, unit_area)


def zoom_cost(
    outcome: SubtreeOutcome, config: RewardConfig, decide_first: bool = True
) -> np.ndarray:
    """Extra compute of zooming over breaking, in patch segmentations, from the zoomed
    subtree's :func:`zoom_outcome` (see the module docstring)."""
    cost = outcome.segmentations + config.policy_cost * outcome.policy_calls
    return cost - 1.0 if decide_first else cost.astype(np.float64)


def reward_unit_area(patch_size: int, finest_downsample: float, eval_downsample: float) -> float:
    """Pixels of one finest-level patch at the evaluation resolution: the reward's unit ``A``."""
    return float((patch_size * finest_downsample / eval_downsample) ** 2)


def zoom_reward(
    error_break: np.ndarray,
    error_zoom: np.ndarray,
    area: np.ndarray,
    cost: np.ndarray,
    lam: float,
    unit_area: float,
) -> np.ndarray:
    """``(err_break − err_zoom) / unit_area − λ · cost``; the error term is 0 where the node's
    scored ``area`` is 0 (outside the slide or all ignored)."""
    if unit_area <= 0:
        raise ValueError(f"unit_area must be positive, got {unit_area}")
    area = np.asarray(area, np.float64)
    gain = np.where(
        area > 0, (np.asarray(error_break, np.float64) - error_zoom) / float(unit_area), 0.0
    )
    return gain - lam * np.asarray(cost, np.float64)


def block_sums(values: np.ndarray, blocks: int) -> np.ndarray:
    """Sum a square ``(s, s)`` array over a ``blocks × blocks`` grid of equal squares."""
    size = values.shape[0] // blocks
    return values.reshape(blocks, size, blocks, size).sum(axis=(1, 3))


@dataclass(frozen=True)
class OraclePlan:
    """The oracle's decisions and rewards (see :func:`oracle_plan`).

    Attributes:
        rewards: g_j's zoom reward per node, ``{level: float (R, n, n)}``.
        zoom: zoom where that reward is positive, ``{level: bool (R, n, n)}``.
        refine: per refine level ``j``, the quadrants refined, on the level-``j + 1`` grid.
    """

    rewards: dict[int, np.ndarray]
    zoom: dict[int, np.ndarray]
    refine: dict[int, np.ndarray]


def oracle_plan(
    errors: Sequence[np.ndarray],
    area: Sequence[np.ndarray],
    reward: RewardConfig,
    rate: int,
    unit_area: float,
    decide_first: DecideFirst = True,
    refinement: Refinement | None = None,
    tissue: Tissue = None,
) -> OraclePlan:
    """The oracle: zoom (and refine) exactly where the reward from ground truth is positive,
    decided from level m−1 up to 0, each level assuming the oracle below it — the upper
    bound of ``docs/method.md``. At a refine level the quadrants are decided first, then the
    zoom against that refined break.

    Args:
        errors: per level, f_j's misclassified pixels at each node, ``(R, n, n)``.
        area: per level, the scored pixels at each node.
        unit_area: the reward's unit of area (:func:`reward_unit_area`).
        decide_first: the cost model (see the module docstring). The oracle itself never
            segments a node it zooms, so True gives its own cost.
        refinement: the refine levels (their ``refine`` decisions are the oracle's own).
        tissue: per working level, the nodes holding tissue (only they cost anything).
    """
    zoom: dict[int, np.ndarray] = {}
    rewards: dict[int, np.ndarray] = {}
    refine: dict[int, np.ndarray] = {}
    plan = None if refinement is None else replace(refinement, refine={})
    for level in range(len(errors) - 2, -1, -1):
        if plan is not None and level in plan.levels:
            gains = refine_rewards(
                errors,
                area[level + 1],
                zoom,
                level,
                rate,
                reward,
                unit_area,
                plan,
                decide_first,
                tissue,
            )
            refine[level] = (gains > 0) & np.asarray(plan.tissue[level + 1], bool)
            plan = plan.with_refine(level, refine[level])
        gain = zoom_gain(
            errors, area[level], zoom, level, rate, reward, unit_area, decide_first, plan, tissue
        )
        rewards[level], zoom[level] = gain, gain > 0
    return OraclePlan(rewards, zoom, refine)


def oracle_rewards(
    errors: Sequence[np.ndarray],
    area: Sequence[np.ndarray],
    reward: RewardConfig,
    rate: int,
    unit_area: float,
    decide_first: DecideFirst = True,
    refinement: Refinement | None = None,
    tissue: Tissue = None,
) -> dict[int, np.ndarray]:
    """The reward of zooming every node when the levels below follow the oracle
    (:func:`oracle_plan`), ``{level: float (R, n, n)}`` for every level but the finest."""
    plan = oracle_plan(errors, area, reward, rate, unit_area, decide_first, refinement, tissue)
    return plan.rewards


def oracle_zoom(
    errors: Sequence[np.ndarray],
    area: Sequence[np.ndarray],
    reward: RewardConfig,
    rate: int,
    unit_area: float,
    decide_first: DecideFirst = True,
    refinement: Refinement | None = None,
    tissue: Tissue = None,
) -> dict[int, np.ndarray]:
    """The oracle's zoom decisions, ``{level: bool (R, n, n)}`` (:func:`oracle_plan`)."""
    plan = oracle_plan(errors, area, reward, rate, unit_area, decide_first, refinement, tissue)
    return plan.zoom


def expand(values: np.ndarray, rate: int) -> np.ndarray:
    """Each ``(R, n, n)`` node's value repeated over its ``r × r`` children, ``(R, n·r, n·r)``."""
    return np.repeat(np.repeat(values, rate, axis=1), rate, axis=2)


def reached_nodes(
    zoom: Mapping[int, np.ndarray],
    tissue: Sequence[np.ndarray],
    rate: int,
    refine: Mapping[int, np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Per level, the tissue nodes a decider reaches: its parent was reached and zoomed, or
    broke and refined it (``refine``, per refine level on the next level's grid)."""
    reached = [tissue[0].astype(bool)]
    for level in range(1, len(tissue)):
        parents = reached[-1] & np.asarray(zoom[level - 1], bool)
        nodes = expand(parents, rate)
        refined = (refine or {}).get(level - 1)
        if refined is not None:
            broke = reached[-1] & ~np.asarray(zoom[level - 1], bool)
            nodes |= expand(broke, rate) & np.asarray(refined, bool)
        reached.append(nodes & tissue[level])
    return reached
