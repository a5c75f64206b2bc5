"""Whether two output folders of one slide hold the same segmentation.

Used to check that a run is reproducible: a Dask batch against one process, a resumed
batch against an uninterrupted one. Labels, zoom map (every pyramid level), the
zoom/break decisions and the GeoJSON regions must be equal; the recorded P(zoom) may
differ by a tolerance, since torch sums in a different order with another thread count.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from razn.outputs import layout
from razn.outputs.batch_table import read_batch_table
from razn.zarr_nodes import child_array

THREAD_TOLERANCE = 1e-4
"""The |ΔP(zoom)| allowed between runs that differ only in torch's thread count (one Dask
worker's thread against a process's two cores, ``--threads``): torch splits its sums
differently, which moves a recorded probability by about 1e-6 (at most 9e-6 measured on the
benchmark's slides). The decisions themselves, labels, zoom maps and regions must still be
exactly equal."""


@dataclass
class OutputComparison:
    """What differs between two slide output folders."""

    differences: list[str] = field(default_factory=list)
    """One line per difference; empty when the outputs agree."""
    max_probability_difference: float = 0.0
    """Largest |ΔP(zoom)| over the decisions both folders share."""

    @property
    def same(self) -> bool:
        return not self.differences


def compare_outputs(a: Path, b: Path, probability_tolerance: float = 0.0) -> OutputComparison:
    """Compare the outputs in slide folders ``a`` and ``b`` (``OUT/<slide name>/``).

    Args:
        probability_tolerance: largest |ΔP(zoom)| in ``decisions.csv`` still counted as equal.
    """
    a, b = Path(a), Path(b)
    result = OutputComparison()
    for name in (layout.LABELS_OME, layout.ZOOM_LEVELS_OME):
        result.differences += _pyramid_differences(a / name, b / name, name)
    labels = [zarr.open_array(str(folder / layout.LABELS), mode="r") for folder in (a, b)]
    if not _arrays_equal(labels[0], labels[1]):
        result.differences.append(f"{layout.LABELS}: the labels differ")
    _compare_decisions(a / layout.DECISIONS, b / layout.DECISIONS, probability_tolerance, result)
    if (a / layout.GEOJSON).read_bytes() != (b / layout.GEOJSON).read_bytes():
        result.differences.append(f"{layout.GEOJSON}: the regions differ")
    return result


def compare_batches(
    one: Path, other: Path, probability_tolerance: float = 0.0
) -> dict[str, OutputComparison]:
    """Each slide done in batch folder ``one`` (per its ``batch.csv``), by output name,
    compared with the same slide's folder in ``other``."""
    rows = read_batch_table(Path(one) / "batch.csv")
    names = [row["output"] for row in rows if row["status"] == "done"]
    return {
        name: compare_outputs(Path(one) / name, Path(other) / name, probability_tolerance)
        for name in names
    }


def _pyramid_differences(a: Path, b: Path, name: str) -> list[str]:
    groups = [zarr.open_group(str(path), mode="r") for path in (a, b)]
    keys = [sorted(group.array_keys()) for group in groups]
    if keys[0] != keys[1]:
        return [f"{name}: pyramid levels {keys[0]} against {keys[1]}"]
    return [
        f"{name}/{key}: the pixels differ"
        for key in keys[0]
        if not _arrays_equal(child_array(groups[0], key, a), child_array(groups[1], key, b))
    ]


def _arrays_equal(x: zarr.Array, y: zarr.Array, rows: int = 2048) -> bool:
    """Equal shapes and pixels, compared a strip of ``rows`` rows at a time (a 100,000²
    slide's labels are 10 GB in RAM)."""
    if x.shape != y.shape:
        return False
    return all(
        np.array_equal(x[top : top + rows], y[top : top + rows])
        for top in range(0, x.shape[0], rows)
    )


def _compare_decisions(a: Path, b: Path, tolerance: float, result: OutputComparison) -> None:
    rows = [_read_rows(path) for path in (a, b)]
    if len(rows[0]) != len(rows[1]):
        result.differences.append(f"{a.name}: {len(rows[0])} rows against {len(rows[1])}")
        return
    # numbered as lines of the file: line 1 is the header
    for number, (row_a, row_b) in enumerate(zip(*rows, strict=True), start=2):
        if row_a[:-1] != row_b[:-1]:
            result.differences.append(f"{a.name} line {number}: {row_a} against {row_b}")
            return
        delta = abs(float(row_a[-1]) - float(row_b[-1]))
        result.max_probability_difference = max(result.max_probability_difference, delta)
    if result.max_probability_difference > tolerance:
        result.differences.append(
            f"{a.name}: P(zoom) differs by up to {result.max_probability_difference:.2e}"
            f" (tolerance {tolerance:.2e})"
        )


def _read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))[1:]
