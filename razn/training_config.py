"""How the networks are trained: f_0 … f_m (``seg_train``) and the zoom policies (``policy``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from razn.config import check_range
from razn.errors import ConfigError
from razn.policy.config import PolicyNetConfig, check_inputs


@dataclass(frozen=True)
class SegTrainConfig:
    """Supervised training of one segmentation network per working level.

    Levels are trained one after another, each from scratch, on patches of
    ``levels.patch_size`` pixels read at the level's own downsample.

    The defaults fit a 2-core CPU: a step of 8 patches of 256² with the default
    MobileNetV3 U-Net takes about 0.6 s (0.8 s with reading and bookkeeping), so four
    levels of 360 steps take about 20 minutes; on the synthetic benchmark the validation
    Dice has levelled off by then (it gains < 0.01 from 360 to 500 steps).
    """

    steps: int = 360
    """Optimisation steps per level."""
    batch_size: int = 8
    """Patches per step."""
    lr: float = 2e-3
    """Peak learning rate of AdamW."""
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    """``cosine`` decays the rate to ``min_lr_ratio · lr`` at the last step; a pure function of
    the step, so a resumed run follows the same schedule."""
    min_lr_ratio: float = 0.05
    """Final learning rate of the cosine schedule, relative to ``lr``."""
    weight_decay: float = 1e-4
    """AdamW decoupled weight decay (0 gives plain Adam)."""
    dice_weight: float = 1.0
    """Weight of the soft Dice loss added to the cross-entropy (0: cross-entropy only)."""
    balance: float = 0.5
    """Share of training patches centred on a pixel of a class drawn uniformly from the classes
    present; the others are centred on a uniformly drawn tissue pixel. 0 disables balancing."""
    augment: bool = True
    """Random flips, 90° rotations and colour jitter on training patches (never on validation)."""
    colour_jitter: float = 0.08
    """Largest relative change of brightness, contrast, saturation and per-channel gain."""
    val_every: int = 90
    """Validate (and checkpoint) every this many steps, and after the last step."""
    val_patches: int = 96
    """Size of the fixed validation set per level (drawn once from the validation slides)."""
    train_splits: tuple[str, ...] = ("train",)
    """Manifest splits whose slides are trained on."""
    val_splits: tuple[str, ...] = ("val",)
    """Manifest splits whose slides form the validation set (never ``test``)."""
    num_workers: int = 1
    """DataLoader worker processes reading patches (0: read in the training process)."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``, …"""
    torch_threads: int = 0
    """CPU threads of the training process (0: torch's default, one per core). On a CPU shared
    with other busy processes, 1 is several times faster: with more, every parallel operation
    waits for a thread that the scheduler has put behind another process."""

    def __post_init__(self) -> None:
        check_range("seg_train.steps", self.steps, low=1)
        check_range("seg_train.batch_size", self.batch_size, low=1)
        check_range("seg_train.lr", self.lr, low=1e-8, high=1.0)
        check_range("seg_train.min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_range("seg_train.weight_decay", self.weight_decay, 0.0, 1.0)
        check_range("seg_train.dice_weight", self.dice_weight, low=0.0)
        check_range("seg_train.balance", self.balance, 0.0, 1.0)
        check_range("seg_train.colour_jitter", self.colour_jitter, 0.0, 0.5)
        check_range("seg_train.val_every", self.val_every, low=1)
        check_range("seg_train.val_patches", self.val_patches, low=1)
        check_range("seg_train.num_workers", self.num_workers, 0, 64)
        check_range("seg_train.torch_threads", self.torch_threads, 0, 1024)
        _check_splits(self.train_splits, self.val_splits)


def _check_splits(train: tuple[str, ...], val: tuple[str, ...]) -> None:
    known = {"train", "val", "test"}
    for name, splits in (("train_splits", train), ("val_splits", val)):
        if not splits:
            raise ConfigError(f"seg_train.{name} must name at least one split")
        unknown = [s for s in splits if s not in known]
        if unknown:
            raise ConfigError(f"seg_train.{name}: unknown split(s) {unknown}; use train, val")
    if "test" in train or "test" in val:
        raise ConfigError(
            "seg_train must not use the 'test' split: test slides are for the final evaluation only"
        )
    if set(train) & set(val):
        raise ConfigError(
            f"seg_train.train_splits {list(train)} and val_splits {list(val)} overlap"
        )


@dataclass(frozen=True)
class PolicyTrainConfig:
    """PPO settings for the zoom policies (one agent per level)."""

    inputs: str = "image"
    """What g_i decides from (:mod:`razn.observation`): ``image``, the patch and its tissue
    share, before f_i runs, so f_i segments only the patches g_i breaks and a zoom costs one
    policy call; or ``segmentation``, the patch and f_i's output, so every node is segmented
    first and each zoomed node's segmentation is thrown away."""
    informed_levels: tuple[int, ...] = ()
    """Decision levels whose g_i sees f_i's output although ``inputs`` is ``image`` (e.g.
    ``[2]``, the last decision level of four working levels, where the image alone tells
    least); negative values count from the finest decision level (-1 is the last)."""
    refine_levels: tuple[int, ...] = (-1,)
    """Decision levels whose breaks are refined: f_i's output on each of a broken patch's r²
    quadrants is shown to a second policy h_i, which sends the quadrants worth it to level
    i+1 and keeps f_i's labels on the rest, so a partial zoom costs 1 + k patches and no
    segmentation is thrown away (:mod:`razn.rewards`); negative values count from the last."""
    timesteps: int = 20000
    """Environment steps (patch decisions) per level."""
    n_envs: int = 4
    """Environments stepped together (vectorised, in one process)."""
    n_steps: int = 256
    """Rollout length per environment between PPO updates."""
    batch_size: int = 256
    """PPO minibatch size."""
    n_epochs: int = 4
    """PPO passes over each rollout (10 gave g_2 a 2 % higher held-out reward on the
    benchmark's val trees for 2.2× the training time)."""
    learning_rate: float = 1e-3
    """Adam learning rate (3e-4 left the finest-level policy at *never zoom* on the
    benchmark's 20,000 steps; 1e-3 with standardised stats reaches uncertainty's reward)."""
    ent_coef: float = 0.01
    """Entropy bonus: keeps the policy exploring both actions early on."""
    clip_range: float = 0.2
    """PPO clipping."""
    episode_length: int = 64
    """Patches per episode (episodes only bound the logging; decisions are independent)."""
    sampling: Literal["uniform", "balanced", "stratified"] = "uniform"
    """Patch sampling: all patches alike; half from patches where zooming pays
    (``balanced``: the optimum shifts towards zooming); or drawn as ``balanced`` with the
    rewards importance-weighted back to the uniform objective (``stratified``)."""
    warm_start_epochs: int = 0
    """Passes of a full-information warm start before PPO (0: none): the policy is first
    fitted to the cached rewards of both actions, ``Σ |r| · BCE(zoom margin, r > 0)``, so
    PPO starts from a policy that already zooms where the observation says zooming pays
    (:mod:`razn.train.warm_start`; no gain on the four-class benchmark, so off)."""
    splits: tuple[Literal["train", "val", "test"], ...] = ("train",)
    """Manifest splits whose slides fill the reward cache."""
    net: PolicyNetConfig = field(default_factory=PolicyNetConfig)
    """Policy and value network architecture."""
    seed: int | None = None
    """PPO seed (None: the run's ``seed``). Policies trained with their own seed live in
    ``lam_<λ>_seed_<s>/``, so several training seeds of one λ sit side by side."""
    torch_threads: int = 1
    """CPU threads for PPO. The policy network is small: one thread is fastest, more only add
    synchronisation (measured: 0.13 ms vs 8.5 ms per convolution on a busy 2-core machine)."""

    def __post_init__(self) -> None:
        check_inputs(self.inputs)
        check_range("policy.timesteps", self.timesteps, low=1)
        check_range("policy.n_envs", self.n_envs, low=1)
        check_range("policy.n_steps", self.n_steps, low=2)
        check_range("policy.batch_size", self.batch_size, low=2)
        check_range("policy.n_epochs", self.n_epochs, low=1)
        check_range("policy.learning_rate", self.learning_rate, low=0)
        check_range("policy.ent_coef", self.ent_coef, low=0)
        check_range("policy.clip_range", self.clip_range, 0, 1)
        check_range("policy.episode_length", self.episode_length, low=1)
        check_range("policy.warm_start_epochs", self.warm_start_epochs, low=0)
        check_range("policy.torch_threads", self.torch_threads, low=1)
        if self.seed is not None:
            check_range("policy.seed", self.seed, low=0)
