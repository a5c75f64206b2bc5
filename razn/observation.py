"""What a zoom policy g_i sees of a patch: one set of functions shared by the environment and
the engine.

A policy sees one of two observations (``policy.inputs``, Gymnasium ``Dict`` spaces):

``image`` (the default: g_i decides *before* f_i runs, so a zoom costs one policy call)
    * ``"image"``: the RGB patch area-downsized to ``size × size``, ``(3, S, S)`` uint8;
    * ``"stats"``: ``(8,)`` float32 in [0, 1] (:data:`IMAGE_STAT_NAMES`): tissue share,
      mean and standard deviation (× 2) of each RGB channel of the view, and its mean
      absolute gradient (texture) — all computed from the downsized view.

``segmentation`` (f_i first: every node g_i zooms has been segmented for nothing)
    * ``"image"`` as above;
    * ``"seg"``: f_i's view of it, ``(K, S, S)`` uint8 scaled 0–255: channel 0 is the
      normalised entropy of f_i's class probabilities, channels 1…K−1 the
      probabilities of the foreground classes;
    * ``"stats"``: ``(5 + K,)`` float32 in [0, 1] (:data:`STAT_NAMES`): mean normalised
      entropy, share of pixels whose normalised entropy exceeds 0.5, mean top-class
      probability, share of pixels on a predicted class boundary, tissue share, and the
      predicted share of every class.

The reward cache stores the ``segmentation`` observation of every node (its ``stats``
also feed the ``uncertainty`` baseline); :func:`policy_view` derives either observation
from it, exactly as the engine computes it from a read patch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional torch alias

from razn.config import check_range
from razn.policy.config import check_inputs

NUM_FIXED_STATS = 5
STAT_NAMES = (
    "mean_entropy",
    "uncertain_share",
    "mean_confidence",
    "boundary_share",
    "tissue_share",
)
ENTROPY_STAT = STAT_NAMES.index("mean_entropy")
"""Index of the mean normalised entropy in ``stats``."""
TISSUE_STAT = STAT_NAMES.index("tissue_share")
"""Index of the tissue share in ``stats``."""

IMAGE_STAT_NAMES = (
    "tissue_share",
    "mean_red",
    "mean_green",
    "mean_blue",
    "std_red",
    "std_green",
    "std_blue",
    "mean_gradient",
)
"""The ``stats`` of the ``image`` observation, each in [0, 1]."""


@dataclass(frozen=True)
class ObservationConfig:
    """The policy's observation."""

    size: int = 64
    """Side in pixels of the downsized patch and segmentation views (8–512). The policy's
    CNN pools globally, so any side works; its cost grows with the square of the side, and
    a policy call must stay cheap beside the segmentation it may save."""

    def __post_init__(self) -> None:
        check_range("observation.size", self.size, low=8, high=512)


def observation_space(
    config: ObservationConfig, num_classes: int, inputs: str = "image"
):  # -> gymnasium.spaces.Dict
    """The Gymnasium ``Dict`` space of a policy seeing ``inputs`` (see the module docstring)."""
    from gymnasium import spaces

    check_inputs(inputs)
    s = config.size
    image = spaces.Box(0, 255, (3, s, s), np.uint8)
    if inputs == "image":
        return spaces.Dict(
            {"image": image, "stats": spaces.Box(0.0, 1.0, (len(IMAGE_STAT_NAMES),), np.float32)}
        )
    return spaces.Dict(
        {
            "image": image,
            "seg": spaces.Box(0, 255, (num_classes, s, s), np.uint8),
            "stats": spaces.Box(0.0, 1.0, (NUM_FIXED_STATS + num_classes,), np.float32),
        }
    )


def space_inputs(space) -> str:  # space: gymnasium.spaces.Dict
    """Which observation a policy's ``space`` is: ``segmentation`` if it holds f_i's view."""
    return "segmentation" if "seg" in space.spaces else "image"


def image_observations(images: np.ndarray, tissue_share: np.ndarray) -> dict[str, np.ndarray]:
    """The ``image`` observation of a batch, from its views ``(N, 3, S, S)`` (read from the
    slide at the view's resolution, :func:`channels_first`, or :func:`image_view`)
    uint8 and the tissue share ``(N,)`` in [0, 1] of each patch."""
    return {"image": images, "stats": image_stats(images, tissue_share)}


def image_stats(images: np.ndarray, tissue_share: np.ndarray) -> np.ndarray:
    """:data:`IMAGE_STAT_NAMES` of downsized views ``(N, 3, S, S)`` uint8, ``(N, 8)`` float32."""
    pixels = images.astype(np.float32) / 255.0
    gradient = np.abs(np.diff(pixels, axis=2)).mean(axis=(1, 2, 3)) + np.abs(
        np.diff(pixels, axis=3)
    ).mean(axis=(1, 2, 3))
    stats = np.concatenate(
        [
            np.clip(np.asarray(tissue_share, np.float32), 0.0, 1.0).reshape(-1, 1),
            pixels.mean(axis=(2, 3)),
            np.clip(2.0 * pixels.std(axis=(2, 3)), 0.0, 1.0),
            np.clip(gradient, 0.0, 1.0).reshape(-1, 1),
        ],
        axis=1,
    )
    return stats.astype(np.float32).reshape(len(images), len(IMAGE_STAT_NAMES))


def policy_view(observations: Mapping[str, np.ndarray], inputs: str) -> dict[str, np.ndarray]:
    """What a policy seeing ``inputs`` gets from ``segmentation`` observations (e.g. the
    reward cache's) whose arrays may lead with any shape ``(…, )``: the same arrays for
    ``segmentation``, the image and its :func:`image_stats` for ``image``."""
    check_inputs(inputs)
    if inputs == "segmentation":
        return dict(observations)
    images = observations["image"]
    leading = images.shape[:-3]
    flat = images.reshape(-1, *images.shape[-3:])
    share = observations["stats"][..., TISSUE_STAT].reshape(-1)
    stats = image_stats(flat, share) if len(flat) else np.zeros((0, len(IMAGE_STAT_NAMES)))
    return {"image": images, "stats": stats.astype(np.float32).reshape(*leading, -1)}


def make_observations(
    patches: np.ndarray,
    probs: np.ndarray,
    tissue_share: np.ndarray,
    config: ObservationConfig,
    image: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Observations for a batch of patches.

    Args:
        patches: ``(N, P, P, 3)`` uint8 RGB patches at the level.
        probs: ``(N, K, P, P)`` float32 class probabilities of f_i on them.
        tissue_share: ``(N,)`` share of each patch that is tissue, in [0, 1].
        image: their views ``(N, 3, S, S)`` when read from the slide (the engine and the
            reward cache do); otherwise pooled from ``patches`` (:func:`image_view`).
    Returns:
        ``{"image": (N, 3, S, S) uint8, "seg": (N, K, S, S) uint8, "stats": (N, 5 + K) float32}``.
    """
    num_classes = probs.shape[1]
    probs_t = torch.from_numpy(np.array(probs, dtype=np.float32))  # a writable copy
    entropy = _normalised_entropy(probs_t)  # (N, P, P)
    seg = torch.cat([entropy[:, None], probs_t[:, 1:]], dim=1)
    stats = _stats(probs_t, entropy, torch.as_tensor(tissue_share, dtype=torch.float32))
    return {
        "image": image_view(patches, config) if image is None else image,
        "seg": _to_uint8(_resize(seg * 255.0, config.size)),
        "stats": stats.numpy()
        .astype(np.float32)
        .reshape(len(patches), NUM_FIXED_STATS + num_classes),
    }


def quadrants(
    patches: np.ndarray, probs: np.ndarray, on_tissue: np.ndarray, rate: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each patch's ``r × r`` quadrants, the areas of its children one level finer: from
    ``(N, P, P, 3)`` patches, ``(N, K, P, P)`` probabilities and ``(N, P, P)`` tissue, the
    same of side ``P / r`` for ``N · r²`` quadrants, ordered by patch, then row, then column
    (as :meth:`razn.geometry.ZoomGeometry.children`)."""
    count, size = patches.shape[0], patches.shape[1]
    if size % rate:
        raise ValueError(f"a patch of {size} px does not split into {rate} × {rate} quadrants")
    q, k, n = size // rate, probs.shape[1], count * rate * rate
    cut_patches = patches.reshape(count, rate, q, rate, q, -1).transpose(0, 1, 3, 2, 4, 5)
    cut_probs = probs.reshape(count, k, rate, q, rate, q).transpose(0, 2, 4, 1, 3, 5)
    cut_tissue = on_tissue.reshape(count, rate, q, rate, q).transpose(0, 1, 3, 2, 4)
    return (
        np.ascontiguousarray(cut_patches).reshape(n, q, q, patches.shape[-1]),
        np.ascontiguousarray(cut_probs).reshape(n, k, q, q),
        np.ascontiguousarray(cut_tissue).reshape(n, q, q),
    )


def quadrant_shares(on_tissue: np.ndarray, rate: int) -> np.ndarray:
    """The tissue share of each quadrant of ``(N, P, P)`` tissue masks, ``(N · r²,)`` in
    :func:`quadrants`' order."""
    count, size = on_tissue.shape[0], on_tissue.shape[1]
    q = size // rate
    cut = on_tissue.reshape(count, rate, q, rate, q).mean(axis=(2, 4))
    return cut.reshape(count * rate * rate)


def quadrant_observations(
    patches: np.ndarray,
    probs: np.ndarray,
    on_tissue: np.ndarray,
    rate: int,
    config: ObservationConfig,
) -> dict[str, np.ndarray]:
    """The refine policy's ``segmentation`` observation of every quadrant of a batch
    (:func:`make_observations` of each quadrant, in :func:`quadrants`' order), with the
    tissue share of each quadrant in its ``stats``.

    Patches larger than ``r × S`` are first area-pooled to ``r × S`` (pixels and f_i's
    probabilities alike), so each quadrant is seen at the view's own resolution: the
    entropy and statistics are those of f_i's output at that resolution, and a quadrant
    costs a sixteenth of its pixels at 256-px patches (the engine asks about every
    tissue quadrant of every break at a refine level).
    """
    share = quadrant_shares(on_tissue, rate)
    side = rate * config.size
    if patches.shape[1] > side:
        patches, probs = _pooled(patches, probs, side)
        on_tissue = np.ones(patches.shape[:3], bool)  # the share is taken above, at full size
    cut_patches, cut_probs, _ = quadrants(patches, probs, on_tissue, rate)
    return make_observations(cut_patches, cut_probs, share, config)


def _pooled(patches: np.ndarray, probs: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N, P, P, 3)`` uint8 patches and ``(N, K, P, P)`` probabilities area-pooled to
    ``side`` (P > side): by whole blocks in integers where ``side`` divides ``P`` (the
    rounded mean, exact and some five times faster than torch on channel-last pixels),
    else by torch's adaptive pooling."""
    count, size = patches.shape[0], patches.shape[1]
    prob_t = torch.from_numpy(np.asarray(probs, np.float32))
    if size % side:
        pixels = torch.from_numpy(np.ascontiguousarray(patches)).permute(0, 3, 1, 2).float()
        pooled_pixels = _to_uint8(F.adaptive_avg_pool2d(pixels, side)).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(pooled_pixels), F.adaptive_avg_pool2d(prob_t, side).numpy()
    f = size // side
    sums = np.zeros((count, side, side, patches.shape[-1]), np.uint32)
    for dy in range(f):  # strided adds: numpy's multi-axis sum of a reshape is 20x slower
        for dx in range(f):
            sums += patches[:, dy::f, dx::f]
    pooled = ((sums + (f * f) // 2) // (f * f)).astype(np.uint8)
    return pooled, F.avg_pool2d(prob_t, f).numpy()


def enlarged(patches: np.ndarray, size: int) -> np.ndarray:
    """``(N, P, P, 3)`` patches smaller than a view, enlarged to ``(N, S, S, 3)`` by nearest
    neighbour (source pixel ``floor(i · P / S)``, as torch's ``nearest``)."""
    index = (np.arange(size) * patches.shape[1]) // size
    return patches[:, index][:, :, index]


def channels_first(views: np.ndarray) -> np.ndarray:
    """``(N, S, S, 3)`` uint8 views read from the slide as the observation's ``(N, 3, S, S)``."""
    return np.ascontiguousarray(np.asarray(views, np.uint8).transpose(0, 3, 1, 2))


def image_view(patches: np.ndarray, config: ObservationConfig) -> np.ndarray:
    """The observation's ``"image"``: ``(N, P, P, 3)`` uint8 patches area-downsized to
    ``(N, 3, S, S)`` uint8."""
    if patches.shape[1] == config.size and patches.shape[2] == config.size:
        return np.ascontiguousarray(np.asarray(patches, np.uint8).transpose(0, 3, 1, 2))
    image = torch.from_numpy(patches.astype(np.float32)).permute(0, 3, 1, 2)  # a writable copy
    return _to_uint8(_resize(image, config.size))


def _normalised_entropy(probs: torch.Tensor) -> torch.Tensor:
    num_classes = probs.shape[1]
    entropy = -(probs * torch.log(probs.clamp_min(1e-8))).sum(dim=1)
    return (entropy / np.log(max(num_classes, 2))).clamp(0.0, 1.0)


def _stats(probs: torch.Tensor, entropy: torch.Tensor, tissue_share: torch.Tensor) -> torch.Tensor:
    num_classes = probs.shape[1]
    # max() gives the arg-max too, over ten times faster than argmax() across channels
    confidence, top = probs.max(dim=1)
    boundary = torch.zeros_like(top, dtype=torch.bool)
    boundary[:, 1:, :] |= top[:, 1:, :] != top[:, :-1, :]
    boundary[:, :, 1:] |= top[:, :, 1:] != top[:, :, :-1]
    shares = torch.stack([(top == k).float().mean(dim=(1, 2)) for k in range(num_classes)], 1)
    fixed = torch.stack(
        [
            entropy.mean(dim=(1, 2)),
            (entropy > 0.5).float().mean(dim=(1, 2)),
            confidence.mean(dim=(1, 2)),
            boundary.float().mean(dim=(1, 2)),
            tissue_share.clamp(0.0, 1.0),
        ],
        dim=1,
    )
    return torch.cat([fixed, shares], dim=1)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return (
        F.adaptive_avg_pool2d(images, size)
        if images.shape[-1] >= size
        else F.interpolate(images, size=(size, size), mode="nearest")
    )


def _to_uint8(values: torch.Tensor) -> np.ndarray:
    return values.round().clamp(0, 255).to(torch.uint8).numpy()
