"""Seamless hashed value noise: every value is a pure function of global coordinates.

A lattice value is an integer hash of ``(ix, iy, seed, stream)``, so any tile of a field
can be rendered on its own and equals the same region of any larger render, exactly.
Interpolation is separable (along x on the few lattice rows, then along y) and uses only
elementwise numpy operations: no BLAS, whose fused multiply-adds and blocking would make
the result depend on the tile's extent in the last bit.

Coordinates are level-0 pixels: ``xs`` and ``ys`` are 1-D arrays of pixel positions and
fields come back as ``float32`` arrays indexed ``[y, x]``.
"""

from __future__ import annotations

import numpy as np

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_PRIME_Y = _U64(0xC2B2AE3D27D4EB4F)
_PRIME_S = _U64(0x165667B19E3779F9)
_MIX_1 = _U64(0xBF58476D1CE4E5B9)
_MIX_2 = _U64(0x94D049BB133111EB)


def hash_u64(ix: np.ndarray, iy: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """A 64-bit hash of integer lattice coordinates (broadcast), slide seed and stream id.

    ``stream`` separates independent quantities (tissue, nuclei, ...) of the same slide.
    """
    key = _U64((seed * 0x100000001B3 + stream * 0x2545F4914F6CDD1D) % 2**64)
    with np.errstate(over="ignore"):
        z = np.asarray(ix).astype(np.int64).view(_U64) * _GOLDEN
        z = z ^ (np.asarray(iy).astype(np.int64).view(_U64) * _PRIME_Y)
        z = (z ^ key) * _PRIME_S
        # splitmix64 finaliser: every input bit affects every output bit.
        z = (z ^ (z >> _U64(30))) * _MIX_1
        z = (z ^ (z >> _U64(27))) * _MIX_2
        return z ^ (z >> _U64(31))


def hash_uniform(ix: np.ndarray, iy: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """Uniform ``float32`` values in [0, 1) from :func:`hash_u64` (24 random bits, exact)."""
    bits = hash_u64(ix, iy, seed, stream) >> _U64(40)
    return bits.astype(np.float32) * np.float32(2.0**-24)


def _axis_weights(coords: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Lattice cell index and smoothstep weight of each coordinate along one axis."""
    u = np.asarray(coords, dtype=np.float64) / spacing
    cell = np.floor(u)
    t = (u - cell).astype(np.float32)
    # Smoothstep hides the lattice: plain linear interpolation shows diamond artefacts.
    return cell.astype(np.int64), t * t * (np.float32(3.0) - np.float32(2.0) * t)


def value_noise(
    xs: np.ndarray, ys: np.ndarray, spacing: float, seed: int, stream: int
) -> np.ndarray:
    """One octave of value noise in [0, 1) on the grid ``ys x xs`` (float32, ``[y, x]``).

    ``spacing`` is the lattice period in level-0 pixels (the feature size).
    """
    cx, wx = _axis_weights(xs, spacing)
    cy, wy = _axis_weights(ys, spacing)
    x_lo, y_lo = int(cx.min()), int(cy.min())
    lat_x = np.arange(x_lo, int(cx.max()) + 2)
    lat_y = np.arange(y_lo, int(cy.max()) + 2)
    lattice = hash_uniform(lat_x[None, :], lat_y[:, None], seed, stream)
    ix = cx - x_lo
    rows = lattice[:, ix] + (lattice[:, ix + 1] - lattice[:, ix]) * wx  # [lattice y, x]
    iy = cy - y_lo
    top = rows[iy]
    return top + (rows[iy + 1] - top) * wy[:, None]


def fractal_noise(
    xs: np.ndarray,
    ys: np.ndarray,
    spacing: float,
    seed: int,
    stream: int,
    octaves: int = 3,
    gain: float = 0.5,
) -> np.ndarray:
    """Sum of ``octaves`` value-noise octaves (spacing halves, amplitude times ``gain``).

    Normalised by the total amplitude, so values stay in [0, 1) with mean near 0.5.
    """
    total = value_noise(xs, ys, spacing, seed, stream)
    amplitude, norm = 1.0, 1.0
    for octave in range(1, octaves):
        amplitude *= gain
        norm += amplitude
        layer = value_noise(xs, ys, spacing / 2**octave, seed, stream * 64 + octave)
        total += np.float32(amplitude) * layer
    total *= np.float32(1.0 / norm)
    return total
