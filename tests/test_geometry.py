"""Zoom geometry: grids, children and extents, with exact values and property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from razn.errors import ConfigError
from razn.geometry import Node, ZoomGeometry


def test_extents_rate_and_children():
    geometry = ZoomGeometry((8, 4, 2, 1), 256)
    assert geometry.rate == 2 and geometry.finest_level == 3
    assert [geometry.extent(i) for i in range(4)] == [2048, 1024, 512, 256]
    assert geometry.children(Node(0, 1, 2)) == [
        Node(1, 2, 4),
        Node(1, 3, 4),
        Node(1, 2, 5),
        Node(1, 3, 5),
    ]
    assert geometry.location(Node(1, 3, 5)) == (3072, 5120)
    assert geometry.parent(Node(1, 3, 5)) == Node(0, 1, 2)
    with pytest.raises(ValueError, match="finest level"):
        geometry.children(Node(3, 0, 0))


def test_grid_covers_slides_whose_size_is_not_a_multiple_of_the_patch():
    geometry = ZoomGeometry((4, 1), 100)
    assert geometry.grid_shape((1000, 401)) == (3, 2)
    assert len(list(geometry.roots((1000, 401)))) == 6
    assert geometry.clipped_box(Node(0, 2, 1), (1000, 401)) == (800, 400, 1000, 401)


@pytest.mark.parametrize(
    ("downsamples", "patch", "message"),
    [
        ((8, 4, 1), 64, "one integer rate"),
        ((3, 2), 64, "one integer rate"),
        ((4, 2), 0, "patch size must be positive"),
        ((1.5,), 3, "not a whole number"),
        ((0.5,), 64, "must be >= 1"),
    ],
)
def test_invalid_geometry_is_refused(downsamples, patch, message):
    with pytest.raises(ConfigError, match=message):
        ZoomGeometry(downsamples, patch)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.integers(2, 4),
    levels=st.integers(1, 3),
    finest=st.integers(1, 3),
    patch=st.integers(1, 12),
    width=st.integers(1, 300),
    height=st.integers(1, 300),
)
def test_children_tile_their_parent_and_every_pixel_is_covered_once(
    rate, levels, finest, patch, width, height
):
    downsamples = tuple(finest * rate ** (levels - i) for i in range(levels + 1))
    geometry = ZoomGeometry(downsamples, patch)
    coverage = np.zeros((height, width), np.int32)
    # Zoom every node whose (level + col + row) is odd: a mixed tree, like a policy's.
    frontier = list(geometry.roots((width, height)))
    while frontier:
        node = frontier.pop()
        if node.level < geometry.finest_level and (node.level + node.col + node.row) % 2:
            children = geometry.children(node)
            assert {geometry.parent(c) for c in children} == {node}
            x, y = geometry.location(node)
            assert min(geometry.location(c) for c in children) == (x, y)
            frontier.extend(children)
        else:
            x0, y0, x1, y1 = geometry.clipped_box(node, (width, height))
            coverage[y0:y1, x0:x1] += 1
    assert (coverage == 1).all()
