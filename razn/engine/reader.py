"""Patch reading ahead of compute: a small thread pool keeps the next batches in flight.

OpenSlide and tifffile release the GIL while decoding, so reading the next batch on
worker threads overlaps the segmentation of the current one (on a GPU, reading stays
ahead of it). For a GPU the batches are read straight into pinned host memory, so the
copy to the device needs no staging copy and can run asynchronously.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from razn.geometry import Node, ZoomGeometry
from razn.models.device import empty_patches
from razn.observation import enlarged
from razn.slide import LevelPlan, Slide, plan_levels, read_at_downsample


class PatchReader:
    """Reads batches of patches of one slide, ``prefetch`` batches ahead, on ``workers`` threads
    (into pinned memory when ``pinned``, which needs CUDA).

    :meth:`views` reads the policies' small views instead (``view_size`` px a side over the
    same area, from the pyramid level nearest that resolution): a decision costs a sixteenth
    of a patch's decoding at 256 → 64 px, and only the patches the policy breaks are then
    read whole.

    With ``margins`` (px per working level), :meth:`batches` reads each patch with that
    many px of context on every side (``P + 2·margin`` a side, the slide's outside white)
    for overlap-tile segmentation; the views never carry one."""

    def __init__(
        self,
        slide: Slide,
        geometry: ZoomGeometry,
        plans: Sequence[LevelPlan],
        workers: int = 2,
        prefetch: int = 2,
        pinned: bool = False,
        view_size: int | None = None,
        margins: Sequence[int] = (),
    ):
        self.slide = slide
        self.margins = tuple(margins) or (0,) * geometry.num_levels
        self.geometry = geometry
        self.plans = plans
        self.view_size = view_size
        self.view_plans: tuple[LevelPlan, ...] | None = None
        if view_size is not None and view_size <= geometry.patch_size:
            # decision levels only: the finest level never decides
            downsamples = [
                view_downsample(geometry, level, view_size)
                for level in range(geometry.finest_level)
            ]
            self.view_plans = plan_levels(slide, downsamples)
        self.prefetch = max(1, prefetch)
        self.pinned = pinned
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="razn-read")
        self.read_seconds = 0.0  # summed over worker threads
        self.wait_seconds = 0.0  # time the caller waited for a batch
        self.level0_pixels_read = 0  # native level-0 pixels decoded
        self._lock = threading.Lock()  # the counters are updated from worker threads

    def batches(
        self, batches: Sequence[Sequence[Node]]
    ) -> Iterator[tuple[Sequence[Node], np.ndarray]]:
        """Yield ``(nodes, patches (N, P + 2·margin, P + 2·margin, 3) uint8)`` for each batch
        (of one level, whose margin it is), in order."""
        return self._ahead(batches, self.plans, self.geometry.patch_size, self.pinned, self.margins)

    def views(
        self, batches: Sequence[Sequence[Node]]
    ) -> Iterator[tuple[Sequence[Node], np.ndarray]]:
        """Yield ``(nodes, views (N, S, S, 3) uint8)`` for each batch, in order: each node's
        area read at ``view_size`` px a side (:func:`view_downsample`); with patches smaller
        than the view, the patches read whole and enlarged (:func:`razn.observation.enlarged`)."""
        if self.view_size is None:
            raise ValueError("this reader was made without a view_size")
        if self.view_plans is None:
            size = self.view_size
            for nodes, patches in self._ahead(batches, self.plans, self.geometry.patch_size, False):
                yield nodes, enlarged(np.asarray(patches), size)
            return
        yield from self._ahead(batches, self.view_plans, self.view_size, False)

    def _ahead(
        self,
        batches: Sequence[Sequence[Node]],
        plans: Sequence[LevelPlan],
        size: int,
        pinned: bool,
        margins: Sequence[int] = (),
    ) -> Iterator[tuple[Sequence[Node], np.ndarray]]:
        """Read ``batches`` ahead; a batch of level i is read with ``margins[i]`` px of
        context (none without ``margins``)."""
        pending: deque[tuple[Sequence[Node], Future[np.ndarray]]] = deque()
        upcoming = iter(batches)
        for nodes in upcoming:
            margin = margins[nodes[0].level] if margins and len(nodes) else 0
            future = self._pool.submit(
                self._read_batch, nodes, plans, size + 2 * margin, pinned, margin
            )
            pending.append((nodes, future))
            if len(pending) > self.prefetch:
                yield self._collect(pending.popleft())
        while pending:
            yield self._collect(pending.popleft())

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _collect(
        self, item: tuple[Sequence[Node], Future[np.ndarray]]
    ) -> tuple[Sequence[Node], np.ndarray]:
        nodes, future = item
        start = time.perf_counter()
        patches = future.result()
        self.wait_seconds += time.perf_counter() - start
        return nodes, patches

    def _read_batch(
        self,
        nodes: Sequence[Node],
        plans: Sequence[LevelPlan],
        size: int,
        pinned: bool,
        margin: int = 0,
    ) -> np.ndarray:
        start = time.perf_counter()
        patches = empty_patches(len(nodes), size, pinned)
        level0_pixels = 0
        for first, count in self._regions(nodes, plans):
            plan = plans[nodes[first].level]
            x, y = self.geometry.location(nodes[first])
            shift = round(margin * plan.downsample)  # level-0 px of context before the patch
            inner = size - 2 * margin
            side = size if count == 1 else self.geometry.rate * inner + 2 * margin
            region = read_at_downsample(
                self.slide, (x - shift, y - shift), plan.downsample, (side, side), plan
            )
            for i in range(first, first + count):
                dx = (nodes[i].col - nodes[first].col) * inner
                dy = (nodes[i].row - nodes[first].row) * inner
                patches[i] = region[dy : dy + size, dx : dx + size]
            if plan.native_level == 0:
                level0_pixels += round(side * plan.scale) ** 2
        with self._lock:
            self.read_seconds += time.perf_counter() - start
            self.level0_pixels_read += level0_pixels
        return patches

    def _regions(
        self, nodes: Sequence[Node], plans: Sequence[LevelPlan]
    ) -> Iterator[tuple[int, int]]:
        """``(first, count)`` runs of ``nodes`` read as one region each: all ``r²`` children
        of one parent, in :meth:`ZoomGeometry.children` order, where slicing the parent's
        area gives the very pixels of each child's own read (:func:`slices_exactly`); else
        one node. Small patches cost less per pixel in one read (64² px: about 0.15 ms a
        read against 0.1 ms a patch from a 128² read), and the reader holds the GIL for a
        quarter as many calls."""
        rate, i = self.geometry.rate, 0
        siblings = rate * rate
        while i < len(nodes):
            node = nodes[i]
            if (
                node.level > 0
                and slices_exactly(plans[node.level])
                and list(nodes[i : i + siblings]) == self.geometry.children(parent_of(node, rate))
            ):
                yield i, siblings
                i += siblings
            else:
                yield i, 1
                i += 1


def parent_of(node: Node, rate: int) -> Node:
    """The node one level coarser whose area holds ``node``."""
    return Node(node.level - 1, node.col // rate, node.row // rate)


def slices_exactly(plan: LevelPlan) -> bool:
    """Whether a region read by ``plan`` and cut into patch-aligned pieces equals reading
    each piece: the native level's downsample and the resize factor are whole numbers, so
    patch corners fall on native pixel corners and the box filter's blocks never straddle
    a cut."""
    scale = plan.downsample / plan.native_downsample
    whole_scale = plan.exact or float(scale).is_integer()
    return float(plan.native_downsample).is_integer() and whole_scale


def view_downsample(geometry: ZoomGeometry, level: int, view_size: int) -> float:
    """The downsample at which a node of ``level`` spans ``view_size`` px: its policy view
    (used when ``view_size`` is at most the patch size; smaller patches are enlarged)."""
    return geometry.extent(level) / view_size
