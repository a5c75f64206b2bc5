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
from razn.slide import LevelPlan, Slide, read_at_downsample


class PatchReader:
    """Reads batches of patches of one slide, ``prefetch`` batches ahead, on ``workers`` threads
    (into pinned memory when ``pinned``, which needs CUDA)."""

    def __init__(
        self,
        slide: Slide,
        geometry: ZoomGeometry,
        plans: Sequence[LevelPlan],
        workers: int = 2,
        prefetch: int = 2,
        pinned: bool = False,
    ):
        self.slide = slide
        self.geometry = geometry
        self.plans = plans
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
        """Yield ``(nodes, patches (N, P, P, 3) uint8)`` for each batch, in order."""
        pending: deque[tuple[Sequence[Node], Future[np.ndarray]]] = deque()
        upcoming = iter(batches)
        for nodes in upcoming:
            pending.append((nodes, self._pool.submit(self._read_batch, nodes)))
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

    def _read_batch(self, nodes: Sequence[Node]) -> np.ndarray:
        start = time.perf_counter()
        size = self.geometry.patch_size
        patches = empty_patches(len(nodes), size, self.pinned)
        level0_pixels = 0
        for i, node in enumerate(nodes):
            plan = self.plans[node.level]
            location = self.geometry.location(node)
            patches[i] = read_at_downsample(
                self.slide, location, plan.downsample, (size, size), plan
            )
            if plan.native_level == 0:
                level0_pixels += round(size * plan.scale) ** 2
        with self._lock:
            self.read_seconds += time.perf_counter() - start
            self.level0_pixels_read += level0_pixels
        return patches
