"""Progress of a batch and of each slide in it, as users of slide tools expect it.

* On a terminal: a bar over the batch (slides) and one per slide, whose unit is the
  node visit. A slide's total is not known in advance, because it depends on where the
  policies zoom: it starts as the tissue roots plus, for every deeper level, the
  children a ``prior_zoom_share`` of the nodes above would have (an estimate from the
  tissue area), and is corrected as each level finishes, when its zoom share is known.
  The postfix says where the slide is: the level, its nodes done and patches segmented.
* Anywhere else (a log file, a pipe, a cluster job): one line per level and per slide on
  stderr, no carriage returns.
* ``quiet``: nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from typing import Protocol, TextIO, TypeVar

T = TypeVar("T")

PRIOR_ZOOM_SHARE = 0.5
"""Zoom share assumed for the levels not yet decided, when estimating a slide's nodes."""


class SlideProgress(Protocol):
    """What the engine reports while it segments one slide."""

    def level_started(self, level: int, nodes: int) -> None:
        """Level ``level`` begins with ``nodes`` nodes to visit (empty ones included)."""
        ...

    def advance(self, nodes: int, patches: int) -> None:
        """``nodes`` more nodes of the current level were decided, ``patches`` segmented."""
        ...

    def level_finished(self, level: int, nodes: int, zoomed: int, patches: int) -> None:
        """The level is done: its node, zoom and patch counts."""
        ...

    def close(self) -> None: ...


class NoProgress:
    """Reports nothing (``--quiet``, the benchmark's timed runs)."""

    def level_started(self, level: int, nodes: int) -> None:
        pass

    def advance(self, nodes: int, patches: int) -> None:
        pass

    def level_finished(self, level: int, nodes: int, zoomed: int, patches: int) -> None:
        pass

    def close(self) -> None:
        pass


def estimated_nodes(known: int, level: int, num_levels: int, rate: int, share: float) -> int:
    """Node visits from ``level`` on: ``known`` there, then ``share`` of each level's nodes
    zoomed into r² children, down to the finest level."""
    total, frontier = known, float(known)
    for _ in range(level + 1, num_levels):
        frontier *= share * rate * rate
        total += round(frontier)
    return total


class LogProgress:
    """One line per level (and the caller's one per slide) on ``stream``, for logs."""

    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self.stream = stream or sys.stderr
        self._started = time.perf_counter()

    def level_started(self, level: int, nodes: int) -> None:
        self._started = time.perf_counter()

    def advance(self, nodes: int, patches: int) -> None:
        pass

    def level_finished(self, level: int, nodes: int, zoomed: int, patches: int) -> None:
        seconds = time.perf_counter() - self._started
        print(
            f"{self.name}: level {level}: {nodes} nodes, {zoomed} zoomed, {patches} patches "
            f"segmented in {seconds:.1f} s",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        pass


class BarProgress:
    """A tqdm bar for one slide (see the module docstring), below the batch's bar."""

    def __init__(
        self,
        name: str,
        num_levels: int,
        rate: int,
        position: int = 1,
        stream: TextIO | None = None,
    ) -> None:
        from tqdm.auto import tqdm

        self.num_levels, self.rate = num_levels, rate
        self.bar = tqdm(
            total=0, desc=name, unit="node", position=position, leave=False, file=stream
        )
        self._done_before = 0  # nodes of the finished levels
        self._patches = 0

    def level_started(self, level: int, nodes: int) -> None:
        rest = estimated_nodes(nodes, level, self.num_levels, self.rate, PRIOR_ZOOM_SHARE)
        self.bar.total = self._done_before + rest
        self._level, self._level_nodes, self._level_done = level, nodes, 0
        self._show()

    def advance(self, nodes: int, patches: int) -> None:
        self._level_done += nodes
        self._patches += patches
        self.bar.update(nodes)
        self._show()

    def level_finished(self, level: int, nodes: int, zoomed: int, patches: int) -> None:
        self.bar.update(nodes - self._level_done)  # the empty nodes, never batched
        self._level_done = nodes
        self._done_before += nodes
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix_str(
            f"level {self._level}: {self._level_done}/{self._level_nodes} nodes, "
            f"{self._patches} patches",
            refresh=True,
        )

    def close(self) -> None:
        self.bar.close()


def slide_progress(
    name: str, mode: str, num_levels: int, rate: int, stream: TextIO | None = None
) -> SlideProgress:
    """The reporter for ``mode``: ``bar`` (a terminal), ``log`` (lines) or ``quiet``."""
    if mode == "bar":
        return BarProgress(name, num_levels, rate, stream=stream)
    if mode == "log":
        return LogProgress(name, stream)
    return NoProgress()


def progress_mode(quiet: bool, stream: TextIO | None = None) -> str:
    """``quiet``, ``bar`` when ``stream`` (default stderr) is a terminal, else ``log``."""
    if quiet:
        return "quiet"
    stream = stream or sys.stderr
    return "bar" if getattr(stream, "isatty", lambda: False)() else "log"


def tracked(items: Sequence[T], description: str, mode: str, unit: str = "item") -> Iterator[T]:
    """``items`` with progress in ``mode``: a bar on a terminal, a start and an end line in a
    log, nothing when quiet (for long steps outside the engine, e.g. a reward cache)."""
    if mode == "bar":
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=description, unit=unit, leave=False)
        return
    started = time.perf_counter()
    if mode == "log":
        print(f"{description}: {len(items)} {unit}s …", file=sys.stderr, flush=True)
    yield from items
    if mode == "log":
        seconds = time.perf_counter() - started
        print(f"{description}: done in {seconds:.1f} s", file=sys.stderr, flush=True)
