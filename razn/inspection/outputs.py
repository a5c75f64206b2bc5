"""One segmented slide's outputs (``OUT_DIR/<slide name>/``) as one object.

Coordinates: ``(x, y)`` in level-0 pixels, as everywhere in razn. The label and
zoom-map pyramids are NGFF multiscales: pyramid level ``k`` has a downsample of
``output_downsample × 2**k`` level-0 pixels per pixel and shares its top-left corner
with level 0. Working levels (the zoom levels 0 = coarsest … m = finest) are a
different thing: ``working_downsamples[i]`` level-0 pixels per pixel at working level i.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from razn.errors import OutputError
from razn.outputs import layout
from razn.outputs.ome_zarr import class_colours

DECISION_COLUMNS = ("level", "col", "row", "x", "y", "action", "zoom_probability")
NOT_DECIDED = 255
"""Zoom-map value of pixels no patch decided (no tissue)."""

REQUIRED = (layout.SUMMARY, layout.LABELS_OME, layout.ZOOM_LEVELS_OME, layout.DECISIONS)


@dataclass
class SlideOutputs:
    """The outputs of one slide: summary, label and zoom-map pyramids, decision table."""

    folder: Path
    summary: dict[str, Any]
    _decisions: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def open(cls, folder: str | Path) -> SlideOutputs:
        """Open an output folder written by ``razn segment``; a missing file is an error."""
        folder = Path(folder)
        if not folder.is_dir():
            raise OutputError(
                "not an output folder (razn segment writes OUT/<slide name>/)", folder
            )
        missing = [name for name in REQUIRED if not (folder / name).exists()]
        if missing:
            raise OutputError(
                f"missing {', '.join(missing)}; segment the slide again (razn segment)"
                + (
                    " — its labels.ome.zarr is the layout of razn 0.1"
                    if (folder / "labels.ome.zarr").exists()
                    else ""
                ),
                folder,
            )
        summary = layout.read_summary(folder)
        if summary is None:
            raise OutputError(f"{layout.SUMMARY} is not readable JSON", folder)
        return cls(folder, summary)

    # -- what the summary says ------------------------------------------------
    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def mode(self) -> str:
        return str(self.summary.get("mode", "?"))

    @property
    def class_names(self) -> list[str]:
        return list(self.summary["class_names"])

    @property
    def class_colours(self) -> np.ndarray:
        """float32 ``(K, 3)`` RGB 0–255 of every class value: the summary's colours (razn's
        palette for outputs written before summaries held them)."""
        colours = self.summary.get("class_colours")
        if colours is None:
            colours = class_colours(len(self.class_names))
        return np.asarray(colours, np.float32).reshape(-1, 3)

    @property
    def working_downsamples(self) -> list[float]:
        return [float(d) for d in self.summary["working_downsamples"]]

    @property
    def patch_size(self) -> int:
        return int(self.summary["patch_size"])

    @property
    def output_downsample(self) -> float:
        """Level-0 pixels per pixel of pyramid level 0 of the labels."""
        return float(self.summary["output_downsample"])

    @property
    def dimensions(self) -> tuple[int, int]:
        """The slide's level-0 ``(w, h)``."""
        w, h = self.summary["dimensions"]
        return int(w), int(h)

    @property
    def slide_path(self) -> Path | None:
        slide = self.summary.get("slide")
        return Path(slide) if slide else None

    def extent(self, level: int) -> float:
        """Level-0 pixels spanned by one side of a patch at working ``level``."""
        return self.patch_size * self.working_downsamples[level]

    # -- pyramids ---------------------------------------------------------------
    def pyramid_levels(self) -> int:
        """Levels of the label pyramid (0 = the output resolution)."""
        return len(self._group(layout.LABELS_OME).paths)

    def pyramid_downsample(self, level: int) -> float:
        """Level-0 pixels per pixel at pyramid ``level``."""
        return self.output_downsample * 2**level

    def labels(self, level: int = 0) -> np.ndarray:
        """Class labels ``[y, x]`` (uint8) at pyramid ``level``."""
        return self._group(layout.LABELS_OME).read(level)

    def zoom_map(self, level: int = 0) -> np.ndarray:
        """The working level at which each pixel was decided, ``NOT_DECIDED`` where none."""
        return self._group(layout.ZOOM_LEVELS_OME).read(level)

    def level_for_size(self, max_side: int) -> int:
        """The finest pyramid level whose longest side is at most ``max_side`` pixels
        (the coarsest level if none is that small)."""
        group = self._group(layout.LABELS_OME)
        for level, shape in enumerate(group.shapes):
            if max(shape) <= max_side:
                return level
        return len(group.shapes) - 1

    # -- decisions --------------------------------------------------------------
    def decisions(self):  # -> pandas.DataFrame
        """Every node the engine visited: level, col, row, x, y (level-0 px), action
        (``zoom``, ``break`` or ``empty``) and zoom_probability, one row per node.

        The CSV is parsed once (every figure needs it); each call returns a copy, so a
        caller may add columns freely."""
        if self._decisions is None:
            self._decisions = self._read_decisions()
        return self._decisions.copy()

    def _read_decisions(self):  # -> pandas.DataFrame
        import pandas as pd

        try:
            table = pd.read_csv(self.folder / layout.DECISIONS)
        except (OSError, ValueError) as exc:
            raise OutputError(
                f"unreadable decision table: {exc}", self.folder / layout.DECISIONS
            ) from None
        missing = [c for c in DECISION_COLUMNS if c not in table.columns]
        if missing:
            raise OutputError(
                f"decision table lacks columns {missing}", self.folder / layout.DECISIONS
            )
        return table

    # -- the slide itself ---------------------------------------------------------
    def thumbnail(self, max_side: int = 1024) -> tuple[np.ndarray, float]:
        """The slide's RGB thumbnail (longest side ``max_side``) and its downsample
        (level-0 pixels per thumbnail pixel); a grey canvas if the slide is gone."""
        from razn.errors import SlideError
        from razn.slide import open_slide

        w, h = self.dimensions
        downsample = max(w, h) / max_side
        size = (max(1, round(w / downsample)), max(1, round(h / downsample)))
        if self.slide_path is not None:
            try:
                with open_slide(self.slide_path) as slide:
                    image = slide.get_thumbnail((max_side, max_side))
                return image, w / image.shape[1]
            except SlideError:
                pass
        return np.full((size[1], size[0], 3), 200, np.uint8), downsample

    def _group(self, name: str) -> _Pyramid:
        return _Pyramid.open(self.folder / name)


@dataclass
class _Pyramid:
    """An NGFF multiscale label image as razn writes it: levels in ``0``, ``1``, …"""

    path: Path
    group: Any
    paths: list[str]

    @classmethod
    def open(cls, path: Path) -> _Pyramid:
        import zarr

        try:
            group = zarr.open_group(str(path), mode="r")
            attrs: dict[str, Any] = dict(group.attrs)
            multiscales = (attrs.get("ome") or attrs)["multiscales"]
            paths = [d["path"] for d in multiscales[0]["datasets"]]
        except (OSError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise OutputError(f"not an NGFF multiscale image: {exc}", path) from None
        return cls(path, group, paths)

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [tuple(self.group[p].shape) for p in self.paths]

    def read(self, level: int) -> np.ndarray:
        if not 0 <= level < len(self.paths):
            raise OutputError(
                f"pyramid level {level} does not exist (levels 0…{len(self.paths) - 1})",
                self.path,
            )
        return np.asarray(self.group[self.paths[level]][...])
