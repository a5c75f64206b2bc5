"""What a zoom policy g_i sees of a patch: one function shared by the environment and the engine.

An observation is a dict of three arrays (Gymnasium ``Dict`` space):

* ``"image"``: the RGB patch area-downsized to ``size × size``, ``(3, S, S)`` uint8;
* ``"seg"``: f_i's view of it, ``(K, S, S)`` uint8 scaled 0–255: channel 0 is the
  normalised entropy of f_i's class probabilities, channels 1…K−1 the
  probabilities of the foreground classes;
* ``"stats"``: ``(5 + K,)`` float32 in [0, 1]: mean normalised entropy, share of
  pixels whose normalised entropy exceeds 0.5, mean top-class probability, share of
  pixels on a predicted class boundary, tissue share, and the predicted share of
  every class.

What f_i already knows (where it is unsure, where its classes meet) is the
strongest hint of where zooming pays; the image lets the policy see what f_i misses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional torch alias

from razn.config import check_range

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


@dataclass(frozen=True)
class ObservationConfig:
    """The policy's observation."""

    size: int = 64
    """Side in pixels of the downsized patch and segmentation views (>= 36 for SB3's CNNs)."""

    def __post_init__(self) -> None:
        check_range("observation.size", self.size, low=36, high=512)


def observation_space(config: ObservationConfig, num_classes: int):  # -> gymnasium.spaces.Dict
    """The Gymnasium ``Dict`` space of :func:`make_observations` for ``num_classes`` classes."""
    from gymnasium import spaces

    s = config.size
    return spaces.Dict(
        {
            "image": spaces.Box(0, 255, (3, s, s), np.uint8),
            "seg": spaces.Box(0, 255, (num_classes, s, s), np.uint8),
            "stats": spaces.Box(0.0, 1.0, (NUM_FIXED_STATS + num_classes,), np.float32),
        }
    )


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
        image: their :func:`image_view`, if already made (the engine's gate made it).
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


def image_view(patches: np.ndarray, config: ObservationConfig) -> np.ndarray:
    """The observation's ``"image"``: ``(N, P, P, 3)`` uint8 patches area-downsized to
    ``(N, 3, S, S)`` uint8."""
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
