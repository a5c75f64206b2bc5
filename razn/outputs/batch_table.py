"""``OUT/batch.csv``: one row per slide of a batch, rewritten as each slide finishes.

Columns: ``slide`` (the path as given), ``output`` (the slide's folder name under OUT,
empty when it failed), ``status`` (``done``, ``failed`` or ``skipped``), ``reason``
(why it failed or was skipped, one line), ``seconds`` (the engine's wall time; for a
skipped slide the time recorded when it was done) and ``patches`` (patches segmented
per working level, coarsest first, joined by ``/``). Rows are in input order; a slide
still running has no row yet. The file is written to a temporary name and moved into
place, so a reader never sees half a table.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("slide", "output", "status", "reason", "seconds", "patches")
STATUSES = ("done", "failed", "skipped")


@dataclass
class SlideOutcome:
    """What happened to one slide of a batch."""

    slide: Path
    status: str  # one of STATUSES
    output: Path | None = None
    reason: str = ""
    seconds: float = 0.0
    patches: list[int] | None = None
    given: str | None = None
    """The slide as the user named it (``./-x.svs`` stays so); None: ``str(slide)``."""

    def row(self) -> list[str]:
        """The ``batch.csv`` row of this outcome."""
        patches = "/".join(str(p) for p in self.patches or [])
        output = self.output.name if self.output is not None else ""
        slide = self.given if self.given is not None else str(self.slide)
        return [slide, output, self.status, self.reason, f"{self.seconds:.3f}", patches]


class BatchTable:
    """Keeps ``path`` (``batch.csv``) up to date with the outcomes of ``count`` slides."""

    def __init__(self, path: Path, count: int):
        self.path = Path(path)
        self.outcomes: list[SlideOutcome | None] = [None] * count

    def record(self, index: int, outcome: SlideOutcome) -> None:
        """Store the outcome of slide ``index`` (input order) and rewrite the table."""
        self.outcomes[index] = outcome
        self.write()

    def write(self) -> None:
        partial = self.path.with_name(f".{self.path.name}.partial")
        with partial.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(o.row() for o in self.outcomes if o is not None)
        partial.replace(self.path)


def read_batch_table(path: Path) -> list[dict[str, str]]:
    """The rows of a ``batch.csv`` as dictionaries keyed by column."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def failed(outcomes: Sequence[SlideOutcome | None]) -> list[SlideOutcome]:
    """The outcomes whose status is ``failed``."""
    return [o for o in outcomes if o is not None and o.status == "failed"]
