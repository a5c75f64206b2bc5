"""The zoom engine: segment one slide level by level, zooming where the decider says.

1. Tissue detection; the root grid at L_0 keeps roots holding any tissue.
2. Level by level, in batches, as the decider needs (:mod:`.deciders`): a decider that
   observes nothing is asked first and only its breaks are read and segmented; one that
   observes the image (razn's policies) sees the read patches and f_i segments only its
   breaks; one that observes f_i's output sees it for every patch. Breaks are written,
   zooms expand into their r² children at L_{i+1}; at L_m every node breaks. Nodes
   without tissue are background and cost nothing.
3. Every break's mask is stitched into one zarr label array, one chunk per root
   (:mod:`.stitch`).
4. Every decision and the time spent reading, segmenting, deciding and writing is
   recorded.

Each area of tissue is decided exactly once because nodes of all levels lie on one
lattice (:mod:`razn.geometry`) and a node is either written or replaced by its children.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from razn.config import check_range
from razn.engine.deciders import Decider, observes_at, refine_levels, refine_observes
from razn.engine.progress import NoProgress, SlideProgress
from razn.engine.reader import PatchReader
from razn.engine.stitch import LabelWriter
from razn.errors import ConfigError, InferenceError
from razn.geometry import Node, check_margin
from razn.models import Segmenter, tissue_labels
from razn.models.backends import Predictor, torch_predictor
from razn.models.device import PRECISIONS, autocast_dtype
from razn.observation import (
    channels_first,
    image_observations,
    make_observations,
    quadrant_observations,
    quadrant_shares,
)
from razn.run_config import RunConfig
from razn.slide import Slide, plan_levels
from razn.slide.tissue import TissueMask, detect_tissue

ACTIONS = ("break", "zoom", "empty")


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs (not what it computes)."""

    batch_size: int = 16
    """Patches per network call."""
    read_workers: int = 2
    """Threads reading patches ahead of compute."""
    prefetch_batches: int = 2
    """Batches read ahead per level."""
    output_downsample: float | None = None
    """Resolution of the label output (level-0 px per pixel); None: the finest working level."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, …"""
    precision: str = "auto"
    """Network precision on CUDA: ``auto`` (bf16 where supported, else fp16), ``bf16``,
    ``fp16`` or ``fp32``. The CPU always runs fp32."""
    count_cip_patches: bool = False
    """Also count the patches cip would segment on each slide (``SlideResult.cip_patches``),
    to report the share of them a budget used."""
    overlap: int = 0
    """Overlap-tile margin (px at the patch's level): each patch is read with this much
    context on every side, segmented at ``(P + 2·overlap)²`` and only its centre ``P²`` kept,
    so no pixel is labelled from a cut-off view. A level whose network was trained with
    more context (``levels.context``) gets that instead (:attr:`ZoomEngine.margins`)."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"engine.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        check_range("engine.batch_size", self.batch_size, low=1)
        check_range("engine.read_workers", self.read_workers, low=1)
        check_range("engine.prefetch_batches", self.prefetch_batches, low=1)
        check_range("engine.overlap", self.overlap, low=0)


DecisionRow = tuple[int, int, int, int, int, str, float]


class DecisionLog:
    """One row per node visited: level, grid position, level-0 location, action, P(zoom).

    Rows are kept in typed arrays (49 bytes a row, against some 250 for a tuple of
    Python objects): a 100,000² slide in 64-px patches visits millions of nodes.
    """

    def __init__(self) -> None:
        self._ints = array("q")  # level, col, row, x, y per row
        self._actions = array("b")  # index into ACTIONS
        self._probabilities = array("d")

    def add(self, node: Node, location: tuple[int, int], action: str, probability: float) -> None:
        self._ints.extend((node.level, node.col, node.row, location[0], location[1]))
        self._actions.append(ACTIONS.index(action))
        self._probabilities.append(probability)

    def __len__(self) -> int:
        return len(self._actions)

    @property
    def rows(self) -> Iterator[DecisionRow]:
        """The rows in the order visited, as ``(level, col, row, x, y, action, p)`` tuples."""
        ints = self._ints
        for i, (action, p) in enumerate(zip(self._actions, self._probabilities, strict=True)):
            level, col, row, x, y = ints[5 * i : 5 * i + 5]
            yield level, col, row, x, y, ACTIONS[action], p

    def write_csv(self, path: Path) -> None:
        """Write ``decisions.csv`` (streamed: never the whole table as text in memory)."""
        with path.open("w", encoding="utf-8") as handle:
            handle.write("level,col,row,x,y,action,zoom_probability\n")
            for lv, c, r, x, y, a, p in self.rows:
                handle.write(f"{lv},{c},{r},{x},{y},{a},{p:.6f}\n")


@dataclass
class SlideResult:
    """What segmenting one slide did and cost."""

    mode: str
    seconds: float = 0.0
    patches: list[int] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)
    zoomed: list[int] = field(default_factory=list)
    """Nodes per level that zoomed (counted in ``nodes``)."""
    refined: list[int] = field(default_factory=list)
    """Quadrants per level that a refine level sent one level finer (nodes of the next)."""
    level0_pixels_read: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    decisions: DecisionLog = field(default_factory=DecisionLog)
    tissue_fraction: float = 0.0
    cip_patches: int | None = None
    """Finest-level nodes holding tissue (what cip segments), when counted."""


class ZoomEngine:
    """Segments slides with per-level segmenters and one decider (see the module docstring)."""

    def __init__(
        self,
        segmenters: Sequence[Segmenter],
        decider: Decider,
        config: RunConfig,
        engine: EngineConfig | None = None,
        predictors: Sequence[Predictor] | None = None,
    ):
        """``predictors`` run f_0 … f_m (default: the ``segmenters`` in eager torch); another
        inference backend (:mod:`razn.models.backends`) gives its own."""
        self.geometry = config.levels.geometry()
        if len(segmenters) != self.geometry.num_levels:
            raise ValueError(f"need {self.geometry.num_levels} segmenters, got {len(segmenters)}")
        self.segmenters = list(segmenters)
        self.decider = decider
        self.config = config
        self.settings = engine or EngineConfig()
        self.device = next(self.segmenters[0].parameters()).device
        self.autocast = autocast_dtype(self.device, self.settings.precision)
        if predictors is None:
            size = self.settings.batch_size
            predictors = [torch_predictor(m, size, self.autocast) for m in self.segmenters]
        if len(predictors) != self.geometry.num_levels:
            raise ValueError(f"need {self.geometry.num_levels} predictors, got {len(predictors)}")
        self.predictors = list(predictors)
        check_margin(
            self.settings.overlap, self.geometry.patch_size, config.model.encoder_depth,
            "engine overlap",
        )  # fmt: skip
        self.margins = tuple(
            max(config.levels.margin(level), self.settings.overlap)
            for level in range(self.geometry.num_levels)
        )
        """Context px on every side of each level's patches: the run's ``levels.context``
        (what f_i was trained with), or the engine's ``overlap`` where that is larger."""
        # The decider keeps per-slide state (its batches, a seeded RNG): threads sharing
        # one engine (a Dask worker's) segment one slide at a time. Two at once mixed their
        # policy batches ("cannot reshape array of size 9 into shape (8, -1)").
        self._one_slide_at_a_time = threading.Lock()

    def input_size(self, level: int) -> int:
        """Side of what f_``level`` segments: the patch and its context margins (px)."""
        return self.geometry.patch_size + 2 * self.margins[level]

    @property
    def output_downsample(self) -> float:
        return self.settings.output_downsample or self.geometry.downsamples[-1]

    def segment(
        self,
        slide: Slide,
        labels_path: Path,
        tissue: TissueMask | None = None,
        progress: SlideProgress | None = None,
    ) -> SlideResult:
        """Segment ``slide`` into the zarr label array at ``labels_path`` (threads sharing
        the engine take turns)."""
        with self._one_slide_at_a_time:
            return self._segment(slide, labels_path, tissue, progress)

    def _segment(
        self,
        slide: Slide,
        labels_path: Path,
        tissue: TissueMask | None,
        progress: SlideProgress | None,
    ) -> SlideResult:
        start = time.perf_counter()
        reset = getattr(self.decider, "reset", None)
        if reset is not None:  # a seeded decider starts afresh on every slide
            reset()
        tissue = tissue or detect_tissue(slide, self.config.tissue)
        run = _SlideRun(self, slide, tissue, labels_path, progress or NoProgress())
        try:
            run.execute()
        finally:
            run.reader.close()
        result = run.result
        result.seconds = time.perf_counter() - start
        if self.settings.count_cip_patches:  # after the timing: not part of the engine's work
            result.cip_patches = run.count_finest_tissue_nodes()
        result.tissue_fraction = tissue.fraction
        result.level0_pixels_read = run.reader.level0_pixels_read
        result.timings.update(read=run.reader.read_seconds, read_wait=run.reader.wait_seconds)
        return result


class _SlideRun:
    """The state of one slide going through the engine."""

    def __init__(
        self,
        engine: ZoomEngine,
        slide: Slide,
        tissue: TissueMask,
        labels_path: Path,
        progress: SlideProgress,
    ):
        self.engine = engine
        self.geometry = engine.geometry
        self.tissue = tissue
        self.progress = progress
        self.slide_path = slide.path
        plans = plan_levels(slide, self.geometry.downsamples)
        cfg = engine.settings
        pinned = engine.device.type == "cuda"
        self.reader = PatchReader(
            slide,
            self.geometry,
            plans,
            cfg.read_workers,
            cfg.prefetch_batches,
            pinned,
            view_size=engine.config.observation.size,
            margins=engine.margins,
        )
        self.writer = LabelWriter(
            labels_path, self.geometry, slide.dimensions, engine.output_downsample
        )
        levels = self.geometry.num_levels
        self.result = SlideResult(
            engine.decider.name,
            patches=[0] * levels,
            nodes=[0] * levels,
            zoomed=[0] * levels,
            refined=[0] * levels,
        )
        self.refine_levels = refine_levels(engine.decider)
        self.result.timings = {"segment": 0.0, "policy": 0.0, "write": 0.0}

    def count_finest_tissue_nodes(self) -> int:
        """The finest-level nodes holding tissue: the patches cip segments on this slide."""
        finest, count = self.geometry.finest_level, 0
        frontier = list(self.geometry.roots(self.writer.dimensions))
        for level in range(self.geometry.num_levels):
            extent = self.geometry.extent(level)
            frontier = [
                n
                for n in frontier
                if self.tissue.fraction_in(self.geometry.location(n), (extent, extent)) > 0
            ]
            if level == finest:
                count = len(frontier)
            else:
                frontier = [child for n in frontier for child in self.geometry.children(n)]
        return count

    def execute(self) -> None:
        frontier = list(self.geometry.roots(self.writer.dimensions))
        for level in range(self.geometry.num_levels):
            self.progress.level_started(level, len(frontier))
            frontier = self._level(level, frontier)
            result = self.result
            self.progress.level_finished(
                level, result.nodes[level], result.zoomed[level], result.patches[level]
            )
        start = time.perf_counter()
        self.writer.close()  # the root canvases still held, one chunk each
        self.result.timings["write"] += time.perf_counter() - start

    def _level(self, level: int, nodes: list[Node]) -> list[Node]:
        """Decide and segment the nodes of one level; return the children to visit next."""
        self.result.nodes[level] = len(nodes)
        nodes = self._drop_empty(nodes)
        observes = observes_at(self.engine.decider, level)
        if level == self.geometry.finest_level or observes == "nothing":
            return self._decide_then_read(level, nodes)
        if observes == "image":
            return self._look_then_segment(level, nodes)
        return self._segment_then_decide(level, nodes)

    def _look_then_segment(self, level: int, nodes: list[Node]) -> list[Node]:
        """The decider sees each node's small view (read at the view's resolution, a sixteenth
        of a patch's pixels at 256 → 64 px); only the patches it breaks are then read whole
        and segmented."""
        children: list[Node] = []
        break_probability: dict[Node, float] = {}
        for batch, views in self.reader.views(self._batches(nodes)):
            share = self._tissue_share(level, batch)
            start = time.perf_counter()
            observations = image_observations(channels_first(views), share)
            zoom, probability = self._decide(level, batch, observations, start)
            for node, z, p in zip(batch, zoom, probability, strict=True):
                if z:
                    children += self._log(node, True, float(p))
                else:
                    break_probability[node] = float(p)
        return children + self._segment_breaks(level, break_probability)

    def _segment_breaks(self, level: int, break_probability: dict[Node, float]) -> list[Node]:
        """Read, segment and write the nodes a decider broke, with their P(zoom); at a refine
        level, return the quadrants it refines."""
        refined: list[Node] = []
        for batch, patches in self.reader.batches(self._batches(list(break_probability))):
            on_tissue = self._tissue_under(level, batch)
            probs = self._segment(level, batch, patches)
            p_zoom = np.array([break_probability[n] for n in batch], np.float32)
            self._apply(batch, np.zeros(len(batch), bool), p_zoom, probs, on_tissue)
            refined += self._refine(level, batch, patches, probs, on_tissue)
            self.progress.advance(len(batch), 0)
        return refined

    def _refine(
        self,
        level: int,
        batch: Sequence[Node],
        patches: np.ndarray,
        probs: np.ndarray,
        on_tissue: np.ndarray,
    ) -> list[Node]:
        """At a refine level, the quadrants of the broken patches of ``batch`` (already
        written with f_i's labels) that the decider sends to level i+1, where their own
        segmentation paints over the parent's; none elsewhere. Only quadrants holding tissue
        are asked. ``patches`` are what was segmented (with any overlap margin)."""
        if level not in self.refine_levels or not len(batch):
            return []
        start = time.perf_counter()
        rate = self.geometry.rate
        centre = self._centre(level, patches)
        children = [child for node in batch for child in self.geometry.children(node)]
        share = quadrant_shares(on_tissue, rate)
        asked = np.flatnonzero(share > 0)
        nodes = [children[int(i)] for i in asked]
        observations = None
        if refine_observes(self.engine.decider) != "nothing" and len(asked):
            shown = quadrant_observations(
                np.asarray(centre), probs, on_tissue, rate, self.engine.config.observation
            )
            observations = {key: value[asked] for key, value in shown.items()}
        if not nodes:
            return []
        refine, _ = self.engine.decider.refine_quadrants(level, nodes, observations)  # type: ignore[attr-defined]
        self.result.timings["policy"] += time.perf_counter() - start
        chosen = [node for node, r in zip(nodes, np.asarray(refine, bool), strict=True) if r]
        self.result.refined[level] += len(chosen)
        return chosen

    def _segment_then_decide(self, level: int, nodes: list[Node]) -> list[Node]:
        """f_i segments every patch; the decider sees its output."""
        children: list[Node] = []
        batches = self._batches(nodes)
        views = self.reader.views(batches)
        for (batch, patches), (_, view) in zip(self.reader.batches(batches), views, strict=True):
            on_tissue = self._tissue_under(level, batch)
            probs = self._segment(level, batch, patches)
            start = time.perf_counter()
            observations = make_observations(
                self._centre(level, patches),  # what the reward caches observe
                probs,
                on_tissue.mean(axis=(1, 2)),
                self.engine.config.observation,
                channels_first(view),
            )
            zoom, probability = self._decide(level, batch, observations, start)
            children += self._apply(batch, zoom, probability, probs, on_tissue)
            broke = np.flatnonzero(~zoom)
            children += self._refine(
                level,
                [batch[int(i)] for i in broke],
                patches[broke],
                probs[broke],
                on_tissue[broke],
            )
        return children

    def _decide(
        self,
        level: int,
        batch: Sequence[Node],
        observations: dict[str, np.ndarray],
        start: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The decider's ``(zoom, P(zoom))`` for ``batch``; the time since ``start`` (building
        the observations included) counts as policy time."""
        decider = self.engine.decider
        zoom, probability = decider.decide(level, batch, observations)
        self.result.timings["policy"] += time.perf_counter() - start
        self._check_finite(probability, f"{decider.name} decider", level, batch)
        self.progress.advance(len(batch), 0)
        return np.asarray(zoom, bool), probability

    def _log(self, node: Node, zoom: bool, probability: float) -> list[Node]:
        """Record a decision; the node's children when it zooms."""
        action = "zoom" if zoom else "break"
        self.result.decisions.add(node, self.geometry.location(node), action, probability)
        if not zoom:
            return []
        self.result.zoomed[node.level] += 1
        return self.geometry.children(node)

    def _decide_then_read(self, level: int, nodes: list[Node]) -> list[Node]:
        if level == self.geometry.finest_level:
            zoom, probability = np.zeros(len(nodes), bool), np.zeros(len(nodes), np.float32)
        else:
            zoom, probability = self.engine.decider.decide(level, nodes, None)
        children: list[Node] = []
        break_probability: dict[Node, float] = {}
        for node, z, p in zip(nodes, zoom, probability, strict=True):
            if z:
                children += self._log(node, True, float(p))
            else:
                break_probability[node] = float(p)
        self.progress.advance(len(nodes) - len(break_probability), 0)
        return children + self._segment_breaks(level, break_probability)

    def _check_finite(
        self, values: np.ndarray, source: str, level: int, batch: Sequence[Node]
    ) -> None:
        """Refuse NaN or infinite network outputs: argmax would turn them into labels that
        look real (NaN compares false, so every such pixel would become class 0)."""
        finite = np.isfinite(values.reshape(len(batch), -1)).all(axis=1)
        if finite.all():
            return
        first = batch[int(np.argmin(finite))]
        raise InferenceError(
            f"{source} gave NaN or infinite outputs for {int((~finite).sum())} of "
            f"{len(batch)} patches at level {level} (first at level-0 "
            f"{self.geometry.location(first)}); nothing was written for this slide; "
            "check the run's checkpoints, or try --precision fp32",
            self.slide_path,
        )

    def _drop_empty(self, nodes: list[Node]) -> list[Node]:
        """Nodes holding no tissue are background: logged, never read."""
        kept = []
        for node in nodes:
            extent = self.geometry.extent(node.level)
            location = self.geometry.location(node)
            if self.tissue.fraction_in(location, (extent, extent)) > 0:
                kept.append(node)
            else:
                self.result.decisions.add(node, location, "empty", 0.0)
        return kept

    def _batches(self, nodes: list[Node]) -> list[list[Node]]:
        size = self.engine.settings.batch_size
        return [nodes[i : i + size] for i in range(0, len(nodes), size)]

    def _tissue_share(self, level: int, batch: Sequence[Node]) -> np.ndarray:
        """The share of each node of ``batch`` that is tissue, ``(N,)`` in [0, 1] (as the
        mean of :meth:`_tissue_under`, the reward cache's rule)."""
        return self._tissue_under(level, batch).mean(axis=(1, 2))

    def _centre(self, level: int, patches: np.ndarray) -> np.ndarray:
        """The ``P × P`` patches inside ``patches`` read with level ``level``'s margin."""
        margin, size = self.engine.margins[level], self.geometry.patch_size
        return patches[:, margin : margin + size, margin : margin + size] if margin else patches

    def _tissue_under(self, level: int, batch: Sequence[Node]) -> np.ndarray:
        """The tissue under each patch of ``batch``, ``(N, P, P)`` bool."""
        size = self.geometry.patch_size
        downsample = self.geometry.downsamples[level]
        locations = [self.geometry.location(n) for n in batch]
        return self.tissue.sample_many(locations, downsample, (size, size))

    def _segment(self, level: int, batch: Sequence[Node], patches: np.ndarray) -> np.ndarray:
        """f_i's class probabilities for the patches of ``batch``, ``(N, K, P, P)``."""
        start = time.perf_counter()
        probs = self.engine.predictors[level](patches)
        margin = self.engine.margins[level]
        if margin:  # keep the centre: every kept pixel had context on all sides
            size = self.geometry.patch_size
            probs = probs[:, :, margin : margin + size, margin : margin + size]
        self.result.timings["segment"] += time.perf_counter() - start
        self._check_finite(probs, f"segmenter f_{level}", level, batch)
        self.result.patches[level] += len(batch)
        self.progress.advance(0, len(batch))
        return probs

    def _apply(
        self,
        batch: Sequence[Node],
        zoom: np.ndarray,
        probability: np.ndarray,
        probs: np.ndarray,
        on_tissue: np.ndarray,
    ) -> list[Node]:
        """Write the breaks of a batch and return the children of its zooms."""
        children: list[Node] = []
        start = time.perf_counter()
        labels = self._labels(probs, on_tissue)
        for i, node in enumerate(batch):
            children += self._log(node, bool(zoom[i]), float(probability[i]))
        breaks = np.flatnonzero(~np.asarray(zoom, bool))
        self.writer.write_batch([batch[int(i)] for i in breaks], labels[breaks])
        self.result.timings["write"] += time.perf_counter() - start
        return children

    @staticmethod
    def _labels(probs: np.ndarray, on_tissue: np.ndarray) -> np.ndarray:
        """The written classes, ``(N, P, P)`` uint8: f_i's classes on tissue, 0 elsewhere."""
        return tissue_labels(probs, on_tissue)
