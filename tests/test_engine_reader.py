"""The engine's patch reader: one read per complete set of siblings gives each patch the
very pixels of its own read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import downsample_pyramid, write_tiff_pyramid

from razn.engine.reader import PatchReader, slices_exactly
from razn.geometry import Node, zoom_geometry
from razn.slide import open_slide, plan_levels, read_at_downsample


@pytest.fixture
def noise_pyramid(tmp_path: Path) -> Path:
    """A 1000 × 700 slide of random pixels (so any shifted or re-filtered pixel shows) with
    native levels at downsamples 1, 2 and 4."""
    level0 = np.random.default_rng(5).integers(0, 256, (700, 1000, 3), dtype=np.uint8)
    return write_tiff_pyramid(tmp_path / "noise.tiff", downsample_pyramid(level0, 3))


@pytest.mark.parametrize(
    ("downsamples", "patch", "grouped"),
    [
        ((4.0, 2.0, 1.0), 32, True),  # every level native
        ((16.0, 8.0), 24, True),  # box-filtered from native level 4 by whole factors 4 and 2
        ((6.0, 3.0), 32, False),  # factor 1.5: a filter block would straddle the cuts
    ],
)
@pytest.mark.parametrize("margin", [0, 6])
def test_sibling_regions_read_the_pixels_of_each_patch(
    noise_pyramid: Path, downsamples: tuple[float, ...], patch: int, grouped: bool, margin: int
) -> None:
    geometry = zoom_geometry(downsamples, patch)
    with open_slide(noise_pyramid) as slide:
        plans = plan_levels(slide, geometry.downsamples)
        last = geometry.grid_shape(slide.dimensions, 0)
        # every child of the bottom-right root (they run off the slide: white), then three of
        # the four children of the first root, then a lone root
        nodes = [
            *geometry.children(Node(0, last[0] - 1, last[1] - 1)),
            *geometry.children(Node(0, 0, 0))[:3],
            Node(0, 1, 0),
        ]
        size = patch + 2 * margin
        reader = PatchReader(slide, geometry, plans, margins=(margin,) * geometry.num_levels)
        try:
            regions = list(reader._regions(nodes, plans))
            got = reader._read_batch(nodes, plans, size, False, margin)
        finally:
            reader.close()
        expected = []
        for node in nodes:
            plan = plans[node.level]
            x, y = geometry.location(node)
            shift = round(margin * plan.downsample)
            at = (x - shift, y - shift)
            expected.append(read_at_downsample(slide, at, plan.downsample, (size, size), plan))
    assert slices_exactly(plans[1]) is grouped
    assert regions == ([(0, 4)] if grouped else [(i, 1) for i in range(4)]) + [
        (4, 1),
        (5, 1),
        (6, 1),
        (7, 1),
    ]
    np.testing.assert_array_equal(got, np.stack(expected))
    assert (got[3, -1, -1] == 255).all()  # past the slide's corner: white
