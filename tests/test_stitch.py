"""Batched stitching: complete sibling groups merge into one block, the pixels stay the same."""

from __future__ import annotations

import numpy as np
import zarr

from razn.engine.stitch import LabelWriter, merge_siblings
from razn.geometry import Node, ZoomGeometry


def test_complete_sibling_groups_merge_recursively_and_incomplete_ones_do_not():
    geometry = ZoomGeometry((4.0, 2.0, 1.0), 2)
    # the 16 grandchildren of root (0, 0) at level 2, each a 2x2 block of its own value
    blocks = {
        Node(2, c, r): np.full((2, 2), 4 * r + c, np.uint8) for r in range(4) for c in range(4)
    }
    blocks[Node(1, 2, 0)] = np.full((4, 4), 99, np.uint8)  # a level-1 break of root (1, 0)
    blocks[Node(2, 4, 2)] = np.full((2, 2), 7, np.uint8)  # one child: its group is incomplete
    merged = merge_siblings(blocks, geometry)
    assert sorted(merged) == [Node(0, 0, 0), Node(1, 2, 0), Node(2, 4, 2)]
    expected = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(merged[Node(0, 0, 0)], expected)


def test_a_batch_write_gives_the_pixels_of_one_write_per_node(tmp_path):
    geometry = ZoomGeometry((4.0, 2.0, 1.0), 8)
    rng = np.random.default_rng(0)
    nodes = [Node(2, c, r) for r in range(4) for c in range(4)] + [Node(1, 2, 0), Node(1, 3, 1)]
    labels = [rng.integers(0, 3, (8, 8), dtype=np.uint8) for _ in nodes]
    one, batch = (
        LabelWriter(tmp_path / name, geometry, (60, 40), 1.0) for name in ("one.zarr", "batch.zarr")
    )
    for node, mask in zip(nodes, labels, strict=True):
        one.write(node, mask)
    batch.write_batch(nodes, labels)
    written = [
        np.asarray(zarr.open_array(str(tmp_path / n), mode="r")[:])
        for n in ("one.zarr", "batch.zarr")
    ]
    np.testing.assert_array_equal(written[0], written[1])
    assert written[1][:32, :32].any()
