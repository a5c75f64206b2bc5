"""Check a dataset before training on it: every slide opens, its mask fits it, the mask's
class values belong to the run's classes, and the splits training needs are there.

``razn check`` prints the per-slide table; ``razn train`` runs the same check on the
slides it will use and stops, naming the file and the reason, before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from razn.data.manifest import Manifest, ManifestEntry
from razn.data.masks import IGNORE, open_mask
from razn.errors import RaznError
from razn.slide import open_slide

SCAN_SIDE = 4096
"""Class values are scanned on the finest mask level whose longer side is at most this
(the finest level when none is): a full scan of a 100,000² mask would take minutes."""


@dataclass(frozen=True)
class EntryCheck:
    """What checking one manifest row found."""

    entry: ManifestEntry
    slide_size: tuple[int, int] | None = None
    """Level-0 ``(w, h)`` of the slide, when it opened."""
    mask_size: tuple[int, int] | None = None
    """``(w, h)`` of the mask's finest level, when it fitted the slide."""
    mask_downsample: float | None = None
    classes: tuple[int, ...] = ()
    """Label values found in the mask (255 = ignore)."""
    problem: str = ""
    """Why the row is unusable (one line naming the file), empty when it is fine."""
    warning: str = ""
    """Something that may be a mistake but does not stop training."""

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class DatasetCheck:
    """Every row's check and the splits that are missing."""

    entries: list[EntryCheck]
    missing_splits: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing_splits and all(e.ok for e in self.entries)

    @property
    def problems(self) -> list[str]:
        lines = [e.problem for e in self.entries if not e.ok]
        if self.missing_splits:
            lines.append(f"no {' and no '.join(self.missing_splits)} slides in the manifest")
        return lines


def check_entry(entry: ManifestEntry, class_names: Sequence[str]) -> EntryCheck:
    """Open ``entry``'s slide and mask and scan the mask's class values."""
    try:
        with open_slide(entry.slide) as slide:
            width, height = slide.dimensions
            size = (width, height)
            if entry.mask is None:
                return EntryCheck(entry, size, warning="no mask")
            with open_mask(entry.mask, slide.dimensions) as mask:
                finest = mask.levels[0]
                scan = _scan_level(mask.levels)
                values = sorted(mask.class_values(scan))
    except RaznError as exc:
        return EntryCheck(entry, problem=str(exc))
    known = len(class_names)
    bad = [v for v in values if v != IGNORE and not 0 <= v < known]
    found = dict(
        slide_size=size,
        mask_size=finest.dimensions,
        mask_downsample=finest.downsample,
        classes=tuple(values),
    )
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" …" if len(bad) > 10 else "")
        problem = (
            f"{entry.mask}: mask has class values {shown} outside 0..{known - 1} "
            f"({', '.join(class_names)}; 255 = ignore) — check data.class_names or remap it"
        )
        return EntryCheck(entry, **found, problem=problem)  # type: ignore[arg-type]
    warning = "" if any(0 < v < known for v in values) else "no foreground class in the mask"
    return EntryCheck(entry, **found, warning=warning)  # type: ignore[arg-type]


def _scan_level(levels: Sequence[object]) -> int:
    """The index of the finest level small enough to scan quickly (see :data:`SCAN_SIDE`)."""
    for index, level in enumerate(levels):
        if max(level.dimensions) <= SCAN_SIDE:  # type: ignore[attr-defined]
            return index
    return 0


def check_dataset(
    manifest: Manifest,
    class_names: Sequence[str],
    needed_splits: Iterable[str] = ("train", "val"),
    splits: Iterable[str] | None = None,
) -> DatasetCheck:
    """Check the rows of ``manifest`` (only those of ``splits``, when given) and that every
    split of ``needed_splits`` has slides."""
    wanted = None if splits is None else set(splits)
    rows = [e for e in manifest.entries if wanted is None or e.split in wanted]
    missing = [name for name in dict.fromkeys(needed_splits) if not manifest.split(name)]
    return DatasetCheck([check_entry(e, class_names) for e in rows], missing)


def format_check(check: DatasetCheck) -> str:
    """The per-slide table of :func:`check_dataset` and a closing line."""

    def size(value: tuple[int, int] | None) -> str:
        return "—" if value is None else f"{value[0]}×{value[1]}"

    header = f"{'slide':<32} {'split':<5} {'slide px':>13} {'mask px':>13} {'mask ds':>7}  classes  status"
    lines = [header, "-" * len(header)]
    for c in check.entries:
        downsample = "—" if c.mask_downsample is None else f"{c.mask_downsample:g}"
        classes = ",".join(map(str, c.classes)) or "—"
        status = "ok" if c.ok else "FAILED"
        if c.ok and c.warning:
            status = f"ok ({c.warning})"
        lines.append(
            f"{c.entry.slide.name[:32]:<32} {c.entry.split:<5} {size(c.slide_size):>13} "
            f"{size(c.mask_size):>13} {downsample:>7}  {classes:<7}  {status}"
        )
    failed = sum(not c.ok for c in check.entries)
    lines.append("")
    lines.append(
        f"{len(check.entries) - failed} of {len(check.entries)} slides usable"
        + (f"; missing splits: {', '.join(check.missing_splits)}" if check.missing_splits else "")
    )
    return "\n".join(lines)
