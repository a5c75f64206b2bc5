"""The RGB pyramid's 2×2 mean (razn.outputs.ngff_slide.mean_2x2) against float rounding."""

from __future__ import annotations

import numpy as np

from razn.outputs.ngff_slide import mean_2x2


def float_mean(block: np.ndarray) -> np.ndarray:
    """The obvious reference: float mean of each 2×2 block (edge repeated), np.round."""
    f = block.astype(np.float64)
    f = np.pad(f, ((0, 0), (0, f.shape[1] % 2), (0, f.shape[2] % 2)), mode="edge")
    mean = (f[:, 0::2, 0::2] + f[:, 1::2, 0::2] + f[:, 0::2, 1::2] + f[:, 1::2, 1::2]) / 4
    return np.round(mean).astype(np.uint8)


def test_every_block_sum_rounds_half_to_even() -> None:
    # One 2×2 block per sum 0 … 1020: exact halves (sums 4q + 2) go to the even of q, q + 1.
    sums = np.arange(0, 1021)
    block = np.zeros((1, 2, 2 * sums.size), np.uint8)
    quarter, rest = sums // 4, sums % 4
    for k, (q, r) in enumerate(zip(quarter.tolist(), rest.tolist(), strict=True)):
        values = [q + (1 if i < r else 0) for i in range(4)]
        block[0, :, 2 * k : 2 * k + 2] = np.array(values, np.uint8).reshape(2, 2)
    out = mean_2x2(block)
    assert out.tolist() == float_mean(block).tolist()
    assert out[0, 0, [2, 6, 10]].tolist() == [0, 2, 2]  # ½ → 0, 1½ → 2, 2½ → 2


def test_odd_sizes_and_channels_match_the_reference() -> None:
    rng = np.random.default_rng(0)
    for shape in [(3, 1, 1), (3, 5, 7), (3, 64, 33)]:
        block = rng.integers(0, 256, shape).astype(np.uint8)
        out = mean_2x2(block)
        assert out.shape == (3, (shape[1] + 1) // 2, (shape[2] + 1) // 2)
        np.testing.assert_array_equal(out, float_mean(block))
