"""The slides of a batch: paths, glob patterns or a manifest, and one output name each.

An argument that names an existing file or folder is a slide, whatever characters its
name holds (spaces, brackets, non-ASCII); one that does not and holds a glob character
(``*``, ``?``, ``[``) is a pattern, expanded in sorted order (``**`` crosses folders).
Anything else is kept as given, so the batch reports it as a slide that cannot be
opened. The same file listed twice (by two spellings or two patterns) is segmented once,
and so is a DICOM whole-slide series named by several of its files (OpenSlide opens the
whole series from any of them): its outputs are named after the series' folder.
"""

from __future__ import annotations

import glob
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from razn.data.manifest import read_manifest
from razn.errors import RaznError

GLOB_CHARACTERS = re.compile(r"[*?\[]")
RESERVED_NAMES = frozenset({"batch.csv", "metrics.json"})  # files in OUT beside the slides


def expand_inputs(
    arguments: Sequence[str | Path], manifest: Path | None = None, split: str | None = None
) -> list[Path]:
    """The slides named by ``arguments`` then by ``manifest`` (its ``split`` only, if given),
    in order, each slide once (see :func:`expand_inputs_as_given`)."""
    return [path for path, _ in expand_inputs_as_given(arguments, manifest, split)]


def expand_inputs_as_given(
    arguments: Sequence[str | Path], manifest: Path | None = None, split: str | None = None
) -> list[tuple[Path, str]]:
    """``(path, spelling)`` of every slide named by ``arguments`` then by ``manifest``, in
    order, each slide once; ``spelling`` is the argument as the user wrote it (or the
    glob match, or the manifest's resolved path), for the batch table.

    Raises:
        RaznError: a pattern matches nothing, or nothing at all is named.
    """
    slides: list[tuple[Path, str]] = []
    for argument in arguments:
        path = Path(argument)
        if path.exists() or not GLOB_CHARACTERS.search(str(argument)):
            slides.append((path, str(argument)))
            continue
        # glob.glob takes absolute and relative patterns alike; Path.glob needs a root
        matches = sorted(glob.glob(str(argument), recursive=True))  # noqa: PTH207
        if not matches:
            raise RaznError(f"no file matches the pattern {str(argument)!r}")
        slides += [(Path(m), m) for m in matches]
    if manifest is not None:
        table = read_manifest(manifest, require_masks=False, check_files=False)
        entries = table.split(split) if split else table.entries
        slides += [(entry.slide, str(entry.slide)) for entry in entries]
    if not slides:
        raise RaznError("no slides given: name slide files, glob patterns or a --manifest")
    return one_per_dicom_series(unique_given(slides))


def unique_given(slides: Sequence[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """``slides`` without repeats of the same resolved file, first spelling kept."""
    seen: set[Path] = set()
    kept = []
    for path, given in slides:
        key = Path(path).resolve()
        if key not in seen:
            seen.add(key)
            kept.append((Path(path), given))
    return kept


def unique_paths(paths: Sequence[Path]) -> list[Path]:
    """``paths`` without repeats of the same resolved file, first spelling kept."""
    return [path for path, _ in unique_given([(Path(p), str(p)) for p in paths])]


def one_per_dicom_series(slides: Sequence[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """The first file of each DICOM series among ``slides`` (``*.dcm`` files whose
    ``dicom.SeriesInstanceUID`` OpenSlide reports), every other slide as it is."""
    seen: set[str] = set()
    kept = []
    for path, given in slides:
        series = dicom_series(path)
        if series is not None:
            if series in seen:
                continue
            seen.add(series)
        kept.append((path, given))
    return kept


def dicom_series(path: Path) -> str | None:
    """The SeriesInstanceUID of a DICOM slide file; None for other files or unreadable ones
    (which then fail with their own reason when segmented)."""
    if Path(path).suffix.lower() != ".dcm" or not Path(path).is_file():
        return None
    from razn.errors import SlideError
    from razn.slide import open_slide

    try:
        with open_slide(path) as slide:
            return slide.properties.get("dicom.SeriesInstanceUID") or None
    except SlideError:
        return None


def output_name(slide_path: Path) -> str:
    """A folder name for a slide's outputs: its file name without extension, made safe.

    Path separators, leading dots and control characters are replaced, so a name can
    never point outside the output folder; spaces, brackets and non-ASCII stay.
    """
    path = Path(slide_path)
    name = path.name
    if path.suffix.lower() == ".dcm" and path.parent.name:
        # a DICOM slide is a folder of files named by UIDs: the folder names the slide
        name = path.parent.name + ".dcm"
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    safe = re.sub(r"[\x00-\x1f/\\:]", "_", stem).strip().lstrip(".")
    return safe or "slide"


def output_names(paths: Sequence[Path]) -> list[str]:
    """One distinct folder name per slide of a batch (``paths`` hold no repeated file).

    A slide keeps :func:`output_name` unless another slide of the batch has the same
    name (compared ignoring case, for case-insensitive file systems); then every one of
    them gets ``-`` and 8 hex digits of the SHA-256 of its resolved path, the same in
    every run with these slides. So does a slide named like a file razn writes beside
    the slide folders (``batch.csv``, ``metrics.json``).
    """
    names = [output_name(p) for p in paths]
    counts = Counter(n.casefold() for n in names)
    return [
        f"{name}-{path_digest(path)}"
        if counts[name.casefold()] > 1 or name.casefold() in RESERVED_NAMES
        else name
        for name, path in zip(names, paths, strict=True)
    ]


def path_digest(path: Path, length: int = 8) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``path`` resolved (POSIX form)."""
    text = Path(path).resolve().as_posix()
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:length]
