"""``razn inspect``: a slide's figures as PNG files and one HTML page that holds them."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from razn.inspection import figures
from razn.inspection.outputs import SlideOutputs
from razn.inspection.stats import decision_statistics

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class FigureFile:
    """One written figure and the sentence that says what it shows."""

    path: Path
    caption: str


def write_inspection(
    outputs: SlideOutputs,
    out_dir: str | Path,
    truth: str | Path | None = None,
    run: str | Path | None = None,
    progress: str = "quiet",
) -> list[FigureFile]:
    """Write every figure of ``outputs`` into ``out_dir`` and an ``index.html`` holding them.

    With ``truth`` (the slide's mask) the oracle's rewards are added to the decision
    statistics (this builds the slide's reward cache with the run's segmenters once,
    reported in ``progress`` mode) and the prediction is compared with the ground truth.
    """
    from razn.inspection.oracle import decision_rewards

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    decisions = outputs.decisions()
    rewards = (
        decision_rewards(outputs, truth, run, progress=progress) if truth is not None else None
    )
    location, size = busiest_root(outputs, decisions)
    plan: list[tuple[str, Callable[[], Figure], str]] = [
        ("zoom_map.png", lambda: figures.zoom_map_figure(outputs),
         "The thumbnail tinted by the working level at which each area was decided."),
        ("zoom_probability.png", lambda: figures.zoom_probability_figure(outputs),
         "The policy's P(zoom) for every node it decided, one panel per level."),
        ("decision_stats.png", lambda: figures.decision_statistics_figure(outputs, rewards),
         "Zoom rate per level" + (", split by whether zooming helped (oracle reward > 0)."
                                  if rewards is not None else ".")),
        ("area_by_level.png", lambda: figures.area_by_level_figure(outputs, truth),
         "Share of the tissue" + (" and of the tumour border" if truth is not None else "")
         + " decided at each level."),
        ("region.png", lambda: figures.region_figure(outputs, location, size),
         f"The {size} px square at ({location[0]}, {location[1]}) around the root patch "
         "with the most finest-level decisions, with the patch grid of every decision in it."),
    ]  # fmt: skip
    if truth is not None:
        plan.insert(1, ("truth.png", lambda: figures.truth_figure(outputs, truth),
                        "Prediction, ground truth and their disagreement."))  # fmt: skip
    written = []
    for name, make, caption in plan:
        figure = make()
        figure.savefig(out_dir / name)
        written.append(FigureFile(out_dir / name, caption))
    table = decision_statistics(decisions, len(outputs.working_downsamples), rewards)
    write_html(
        out_dir / "index.html", outputs, written, table.to_html(index=False, float_format="%.3f")
    )
    return written


def busiest_root(outputs: SlideOutputs, decisions, roots: int = 3) -> tuple[tuple[int, int], int]:
    """A square of ``roots × roots`` root patches centred on the one with the most
    decisions at the finest level: its level-0 ``(x, y)`` and side (level-0 px)."""
    root_extent = round(outputs.extent(0))
    finest = len(outputs.working_downsamples) - 1
    rows = decisions[decisions["level"] == finest]
    if rows.empty:
        rows = decisions
    if rows.empty:
        return (0, 0), root_extent * roots
    keys = np.stack([rows["x"] // root_extent, rows["y"] // root_extent], axis=1)
    unique, counts = np.unique(keys, axis=0, return_counts=True)
    col, row = (int(v) for v in unique[int(np.argmax(counts))])
    w, h = outputs.dimensions
    last_col, last_row = max(0, -(-w // root_extent) - roots), max(0, -(-h // root_extent) - roots)
    start_col = min(max(0, col - roots // 2), last_col)
    start_row = min(max(0, row - roots // 2), last_row)
    return (start_col * root_extent, start_row * root_extent), root_extent * roots


def write_html(path: Path, outputs: SlideOutputs, files: list[FigureFile], table: str) -> Path:
    """A self-contained page (images referenced beside it) with the figures and the table."""
    summary = outputs.summary
    facts = (
        f"mode {summary.get('mode')}, λ {summary.get('lambda')}, {summary.get('seconds', 0):.1f} s, "
        f"patches per level {summary.get('patches')}"
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>razn inspect: {html.escape(outputs.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "img{max-width:100%}figure{margin:2em 0}td,th{padding:2px 8px}</style>",
        f"</head><body><h1>{html.escape(outputs.name)}</h1><p>{html.escape(facts)}</p>",
        "<h2>Decisions per level</h2>",
        table,
    ]
    for file in files:
        parts.append(
            f"<figure><img src='{html.escape(file.path.name)}' alt='{html.escape(file.path.stem)}'>"
            f"<figcaption>{html.escape(file.caption)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
