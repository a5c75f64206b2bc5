"""Stitching into one chunk per root: the pixels of one write per patch, in bounded memory."""

from __future__ import annotations

import numpy as np
import zarr

from razn.engine.stitch import LabelWriter
from razn.geometry import Node, ZoomGeometry


def _written(tmp_path, name, buffer_bytes, nodes, labels, geometry):
    writer = LabelWriter(tmp_path / name, geometry, (60, 40), 1.0, buffer_bytes=buffer_bytes)
    writer.write_batch(nodes, labels)
    writer.close()
    return writer, np.asarray(zarr.open_array(str(tmp_path / name), mode="r")[:])


def test_one_chunk_per_root_and_the_same_pixels_when_memory_is_short(tmp_path):
    geometry = ZoomGeometry((4.0, 2.0, 1.0), 8)  # roots of 32 level-0 px: 2 x 2 on 60 x 40
    rng = np.random.default_rng(0)
    # the finest patches of root (0, 0), two level-1 breaks of root (1, 0), and in between
    # a finest patch of root (0, 1), so that a one-canvas buffer writes roots early
    nodes = [Node(2, c, r) for r in range(2) for c in range(4)] + [Node(1, 2, 0)]
    nodes += [Node(2, 0, 4)] + [Node(2, c, r) for r in range(2, 4) for c in range(4)]
    nodes += [Node(1, 3, 1)]
    labels = [rng.integers(0, 3, (8, 8), dtype=np.uint8) for _ in nodes]
    roomy, expected = _written(tmp_path, "roomy.zarr", 2**20, nodes, labels, geometry)
    assert roomy.array.chunks == (32, 32) and roomy.chunks_written == 3  # roots with patches
    tight, got = _written(tmp_path, "tight.zarr", 1, nodes, labels, geometry)
    assert tight.chunks_written > 3  # written early, read back and merged
    np.testing.assert_array_equal(got, expected)
    for node, mask in zip(nodes, labels, strict=True):  # each patch where it belongs
        x, y = geometry.location(node)
        scale = round(geometry.downsamples[node.level])
        block = np.repeat(np.repeat(mask, scale, 0), scale, 1)
        h, w = min(block.shape[0], 40 - y), min(block.shape[1], 60 - x)
        np.testing.assert_array_equal(got[y : y + h, x : x + w], block[:h, :w])
    assert (got[32:, 32:] == 0).all()  # root (1, 1) never written: background


def test_an_all_background_root_stays_absent_and_a_rewritten_one_keeps_its_zeros(tmp_path):
    geometry = ZoomGeometry((4.0, 2.0, 1.0), 8)  # roots of 32 level-0 px: 2 x 2 on 60 x 40
    ones, zeros = np.ones((8, 8), np.uint8), np.zeros((8, 8), np.uint8)
    # root (0, 0) holds a class-1 patch; root (1, 0) only background
    writer, got = _written(
        tmp_path, "a.zarr", 2**20, [Node(2, 0, 0), Node(2, 4, 0)], [ones, zeros], geometry
    )
    assert writer.chunks_written == 1
    assert zarr.open_array(str(tmp_path / "a.zarr"), mode="r").nchunks_initialized == 1
    assert got[:8, :8].all() and not got[:, 8:].any()
    # A one-canvas buffer writes root (0, 0) early; its patch painted again as background
    # later must overwrite the chunk on disk, not leave the early 1s behind.
    nodes = [Node(2, 0, 0), Node(2, 4, 0), Node(2, 0, 0)]
    _, got = _written(tmp_path, "b.zarr", 1, nodes, [ones, ones, zeros], geometry)
    assert not got[:8, :8].any() and got[:8, 32:40].all()


def test_neighbouring_roots_go_in_one_call_and_a_background_one_breaks_the_run(tmp_path):
    geometry = ZoomGeometry((4.0, 2.0, 1.0), 8)  # roots of 32 level-0 px: 4 x 2 on 120 x 40
    twos, zeros = np.full((8, 8), 2, np.uint8), np.zeros((8, 8), np.uint8)
    # chunk row 0: roots 0 and 1 painted, root 2 background, root 3 painted (at its edge)
    nodes = [Node(2, 0, 0), Node(2, 4, 0), Node(2, 8, 0), Node(2, 12, 0)]
    writer = LabelWriter(tmp_path / "r.zarr", geometry, (120, 40), 1.0)
    calls: list[tuple[slice, slice]] = []
    array_type = type(writer.array)

    class Recording(array_type):  # type: ignore[misc,valid-type]
        def __setitem__(self, key, value):
            calls.append(key)
            super().__setitem__(key, value)

    writer.array.__class__ = Recording
    writer.write_batch(nodes, [twos, twos, zeros, twos])
    writer.close()
    assert calls == [(slice(0, 32), slice(0, 64)), (slice(0, 32), slice(96, 120))]
    assert writer.chunks_written == 3
    got = np.asarray(zarr.open_array(str(tmp_path / "r.zarr"), mode="r")[:])
    assert got[:8, :8].all() and got[:8, 32:40].all() and got[:8, 96:104].all()
    assert not got[:, 64:96].any() and got.sum() == 3 * 64 * 2
    assert zarr.open_array(str(tmp_path / "r.zarr"), mode="r").nchunks_initialized == 3
