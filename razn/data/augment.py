"""Training augmentations for (image, labels) patch pairs, driven by a numpy ``Generator``.

Geometric changes (flips, 90° rotations) are applied to the image and its labels
alike, so they stay aligned pixel for pixel; colour changes touch the image only.
Arrays are ``[y, x]``: images ``(h, w, 3)`` uint8 RGB, labels ``(h, w)`` uint8.
"""

from __future__ import annotations

import numpy as np

# ITU-R 601 luma weights: the grey a saturation change blends towards.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def augment_pair(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, colour_jitter: float
) -> tuple[np.ndarray, np.ndarray]:
    """A random flip/rotation of both arrays, then colour jitter of the image."""
    image, labels = flip_rotate(image, labels, rng)
    if colour_jitter > 0:
        image = jitter_colour(image, rng, colour_jitter)
    return image, labels


def flip_rotate(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 symmetries of the square, the same for ``image`` and ``labels``.

    Only exact pixel permutations: no interpolation, so labels stay valid classes.
    """
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    if flip:
        image, labels = image[:, ::-1], labels[:, ::-1]
    image, labels = np.rot90(image, k, axes=(0, 1)), np.rot90(labels, k, axes=(0, 1))
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def jitter_colour(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Mild stain/scanner variation: brightness, contrast, saturation and per-channel gain.

    Each factor is drawn uniformly from ``[1 − strength, 1 + strength]``; the
    per-channel gain shifts the hue slightly, as stain batches do.
    """
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, 3)
    gains = rng.uniform(1 - strength / 2, 1 + strength / 2, 3).astype(np.float32)
    x = image.astype(np.float32)
    grey = x @ _LUMA
    x = grey[..., None] + saturation * (x - grey[..., None])
    mean = float(grey.mean())
    x = mean + contrast * (x - mean)
    x = x * (brightness * gains)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)
