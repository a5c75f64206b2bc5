"""The dataset manifest: a CSV listing each slide, its label mask and its split.

Format: a header row with the columns ``slide,mask,split`` (in any order, any case;
extra columns are ignored), then one row per slide:

* ``slide``: path of the slide, relative to the CSV's folder or absolute;
* ``mask``: path of its label mask (file or zarr directory), likewise; it may be
  empty only when reading with ``require_masks=False`` (unlabelled slides);
* ``split``: ``train``, ``val`` or ``test``.

Blank lines are skipped; each slide may appear once. Errors name the CSV, the row
(the file's line number, the header being row 1) and the column. The CSV is read
with the :mod:`csv` module only: nothing in it is ever evaluated.
"""

from __future__ import annotations

import csv
import difflib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Literal

from razn.errors import ManifestError

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")
COLUMNS = ("slide", "mask", "split")


@dataclass(frozen=True)
class ManifestEntry:
    """One slide of the dataset: absolute ``slide`` and ``mask`` paths (mask may be None)."""

    slide: Path
    mask: Path | None
    split: Split


@dataclass(frozen=True)
class Manifest:
    """The entries of a manifest, in file order; ``path`` is the CSV they came from."""

    entries: tuple[ManifestEntry, ...]
    path: Path | None = None

    def split(self, name: str) -> tuple[ManifestEntry, ...]:
        """The entries of split ``name`` (``train``, ``val`` or ``test``)."""
        _check_split(name, self.path, "")
        return tuple(e for e in self.entries if e.split == name)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)


def read_manifest(
    path: str | PathLike[str], require_masks: bool = True, *, check_files: bool = True
) -> Manifest:
    """Read and validate a manifest CSV; paths come back absolute.

    Args:
        path: the CSV file.
        require_masks: refuse rows with an empty ``mask`` (set False for unlabelled slides).
        check_files: refuse rows whose slide or mask does not exist.
    """
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise ManifestError(f"empty manifest; expected a header {','.join(COLUMNS)}", path)
    columns = _columns(rows[0][1], path)
    folder = path.resolve().parent
    entries: list[ManifestEntry] = []
    seen: dict[Path, int] = {}
    for line, row in rows[1:]:
        entry = _entry(row, columns, line, folder, require_masks, path)
        if entry.slide in seen:
            raise ManifestError(
                f"row {line}, column 'slide': {entry.slide} is already listed in row "
                f"{seen[entry.slide]}; each slide may appear once",
                path,
            )
        seen[entry.slide] = line
        if check_files:
            _check_files(entry, line, path)
        entries.append(entry)
    if not entries:
        raise ManifestError("empty manifest: a header but no slides", path)
    return Manifest(tuple(entries), path)


def write_manifest(path: str | PathLike[str], entries: Iterable[ManifestEntry]) -> Path:
    """Write ``entries`` as a manifest CSV, paths relative to the CSV's folder.

    Relative entry paths are taken relative to the current directory.
    """
    path = Path(path)
    folder = path.resolve().parent
    lines = [list(COLUMNS)]
    for entry in entries:
        _check_split(entry.split, path, f"entry {entry.slide}: ")
        mask = "" if entry.mask is None else _relative(entry.mask, folder)
        lines.append([_relative(entry.slide, folder), mask, entry.split])
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows(lines)
    except OSError as exc:
        raise ManifestError(f"cannot write the manifest: {exc.strerror or exc}", path) from None
    return path


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank rows with their line numbers."""
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append((reader.line_num, row))
    except FileNotFoundError:
        raise ManifestError("manifest not found; check the path", path) from None
    except OSError as exc:
        raise ManifestError(f"cannot read the manifest: {exc.strerror or exc}", path) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(
            f"not a CSV text file ({type(exc).__name__}: {exc}); expected UTF-8 CSV "
            f"with columns {','.join(COLUMNS)}",
            path,
        ) from None
    return rows


def _columns(header: list[str], path: Path) -> dict[str, int]:
    """Index of each required column; the header is matched ignoring case and spaces."""
    names = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        renames = [f"{c[0]!r} to {m!r}" for m in missing if (c := _close(m, names))]
        hint = f" (rename {', '.join(renames)}?)" if renames else ""
        raise ManifestError(
            f"row 1: missing column(s) {', '.join(map(repr, missing))}; found "
            f"{', '.join(map(repr, names))}; expected {','.join(COLUMNS)}{hint}",
            path,
        )
    return {c: names.index(c) for c in COLUMNS}


def _entry(
    row: list[str],
    columns: dict[str, int],
    line: int,
    folder: Path,
    require_masks: bool,
    path: Path,
) -> ManifestEntry:
    if len(row) <= max(columns.values()):
        raise ManifestError(
            f"row {line}: {len(row)} field(s), too few for the header's columns", path
        )
    cell = {c: row[i].strip() for c, i in columns.items()}
    for column in ("slide", "mask"):
        if "\x00" in cell[column]:  # no file system path holds one; pathlib would raise
            raise ManifestError(f"row {line}, column {column!r}: path holds a NUL byte", path)
    if not cell["slide"]:
        raise ManifestError(f"row {line}, column 'slide': empty; expected a slide path", path)
    if not cell["mask"] and require_masks:
        raise ManifestError(
            f"row {line}, column 'mask': empty; every slide needs a ground-truth mask here "
            "(training and evaluation score against it; razn segment --manifest accepts "
            "slides without masks)",
            path,
        )
    split = _check_split(cell["split"].lower(), path, f"row {line}, column 'split': ")
    mask = (folder / cell["mask"]).resolve() if cell["mask"] else None
    return ManifestEntry((folder / cell["slide"]).resolve(), mask, split)


def _check_split(value: str, path: Path | None, where: str) -> Split:
    if value in SPLITS:
        return value
    close = _close(value, list(SPLITS)) or [s for s in SPLITS if value.startswith(s)]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ManifestError(
        f"{where}unknown split {value!r}; expected one of {', '.join(SPLITS)}{hint}", path
    )


def _check_files(entry: ManifestEntry, line: int, path: Path) -> None:
    for column, target in (("slide", entry.slide), ("mask", entry.mask)):
        if target is not None and not target.exists():
            raise ManifestError(
                f"row {line}, column {column!r}: file not found: {target} "
                "(relative paths are relative to the CSV's folder)",
                path,
            )


def _close(word: str, options: list[str]) -> list[str]:
    return difflib.get_close_matches(word, options, n=1, cutoff=0.6)


def _relative(target: Path, folder: Path) -> str:
    """``target`` relative to ``folder`` with ``/`` separators, absolute if impossible."""
    target = Path(target).resolve()
    try:
        return Path(os.path.relpath(target, folder)).as_posix()
    except ValueError:  # another drive on Windows
        return target.as_posix()
