"""Score every slide segmented under an output folder against a manifest's masks.

``razn segment`` writes ``OUT/<slide name>/`` with ``labels.zarr`` and ``summary.json``;
this module pairs each such folder with the manifest entry of the same slide (the
slide file its ``summary.json`` records, else the folder named
:func:`razn.engine.inputs.output_name` of the slide path), scores it
with :func:`razn.evaluate.score_labels` at one evaluation resolution and pools the
confusion matrices over slides. A slide that cannot be scored is reported and the
others go on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zarr

from razn.data.manifest import ManifestEntry, read_manifest
from razn.data.masks import open_mask
from razn.engine.inputs import output_name
from razn.errors import MaskError, RaznError
from razn.evaluate import SegmentationScores, score_labels
from razn.outputs.layout import LABELS, read_summary
from razn.slide import open_slide


@dataclass
class SlideScore:
    """One slide's scores, or why it has none."""

    name: str
    slide: Path
    scores: SegmentationScores | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class EvaluationReport:
    """Per-slide and pooled scores at ``downsample`` (level-0 px per evaluated pixel)."""

    downsample: float
    class_names: tuple[str, ...]
    slides: list[SlideScore]
    missing: list[Path]

    @property
    def scored(self) -> list[SlideScore]:
        return [s for s in self.slides if s.scores is not None]

    @property
    def failed(self) -> list[SlideScore]:
        return [s for s in self.slides if s.scores is None]

    @property
    def pooled(self) -> SegmentationScores | None:
        """Scores of all scored slides' pixels together (confusion matrices summed)."""
        scored = self.scored
        if not scored:
            return None
        total = scored[0].scores
        for item in scored[1:]:
            total = total + item.scores  # type: ignore[operator]
        return total

    def as_dict(self) -> dict[str, Any]:
        """The content of ``metrics.json``."""
        pooled = self.pooled
        return {
            "evaluation_downsample": self.downsample,
            "class_names": list(self.class_names),
            "pooled": pooled.as_dict(self.class_names) if pooled is not None else None,
            "slides": [
                {
                    "name": s.name,
                    "slide": str(s.slide),
                    "mode": s.summary.get("mode"),
                    "seconds": s.summary.get("seconds"),
                    "patches": s.summary.get("patches"),
                    **(s.scores.as_dict(self.class_names) if s.scores is not None else {}),
                    **({"error": s.error} if s.error else {}),
                }
                for s in self.slides
            ],
            "missing": [str(p) for p in self.missing],
        }

    def table(self) -> str:
        """A plain-text table: one row per slide and a pooled row, Dice and IoU per class."""
        names = self.class_names
        header = ["slide", "mode", *[f"Dice {n}" for n in names], "fg Dice", "fg IoU", "seconds"]
        rows = []
        for s in self.scored:
            rows.append(_row(s.name, s.summary.get("mode", ""), s.scores, s.summary.get("seconds")))
        pooled = self.pooled
        if pooled is not None:
            seconds = sum(float(s.summary.get("seconds") or 0.0) for s in self.scored)
            rows.append(_row("(pooled)", "", pooled, seconds))
        widths = [
            max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
            for i, h in enumerate(header)
        ]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.append(f"evaluated at downsample {self.downsample:g} (level-0 px per pixel)")
        return "\n".join(lines)


def _row(name: str, mode: str, scores: Any, seconds: Any) -> list[str]:
    dice = [_fmt(d) for d in scores.dice]
    secs = f"{float(seconds):.1f}" if seconds is not None else "-"
    return [name, str(mode), *dice, _fmt(scores.foreground_dice), _fmt(scores.foreground_iou), secs]


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def output_folders(pred_dir: Path) -> dict[str, Path]:
    """Folders under ``pred_dir`` holding a finished segmentation (``summary.json``), by name."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise RaznError("prediction folder not found", pred_dir)
    return {
        p.name: p
        for p in sorted(pred_dir.iterdir())
        if p.is_dir() and not p.name.startswith(".") and (p / "summary.json").is_file()
    }


def evaluate_outputs(
    pred_dir: Path,
    manifest_path: Path,
    split: str | None = None,
    downsample: float | None = None,
) -> EvaluationReport:
    """Score each output folder under ``pred_dir`` whose slide is in the manifest (``split``).

    Args:
        downsample: evaluation resolution (level-0 px per pixel); default: the outputs'
            own resolution, which must then be the same for all of them.
    Raises:
        RaznError: nothing to evaluate, or outputs of different resolutions or classes
            without an explicit ``downsample``.
    """
    manifest = read_manifest(manifest_path)
    entries: Sequence[ManifestEntry] = manifest.split(split) if split else manifest.entries
    folders = output_folders(pred_dir)
    by_slide = _folders_by_slide(folders.values())
    pairs = [
        (e, by_slide.get(e.slide.resolve()) or folders.get(output_name(e.slide))) for e in entries
    ]
    found = [(e, f) for e, f in pairs if f is not None]
    if not found:
        where = f" of split {split}" if split else ""
        raise RaznError(f"no segmented slide{where} of {manifest.path} found here", pred_dir)
    summaries = {f: _read_summary(f) for _, f in found}
    class_names = _agreed(summaries, "class_names", pred_dir)
    if downsample is None:
        downsample = float(_agreed(summaries, "output_downsample", pred_dir, "; pass --downsample"))
    report = EvaluationReport(
        float(downsample), tuple(class_names), [], [e.slide for e, f in pairs if f is None]
    )
    for entry, folder in found:
        report.slides.append(_score_one(entry, folder, summaries[folder], report))
    return report


def _score_one(
    entry: ManifestEntry, folder: Path, summary: dict[str, Any], report: EvaluationReport
) -> SlideScore:
    item = SlideScore(folder.name, entry.slide, summary=summary)
    if "error" in summary:
        item.error = summary["error"]
        return item
    try:
        labels = zarr.open_array(str(folder / LABELS), mode="r")
        if entry.mask is None:
            raise MaskError("the slide has no mask to score against", entry.slide)
        with open_slide(entry.slide) as slide, open_mask(entry.mask, slide.dimensions) as mask:
            item.scores = score_labels(
                labels,
                float(summary["output_downsample"]),
                mask,
                len(report.class_names),
                report.downsample,
            )
    except RaznError as exc:
        item.error = str(exc)
    except (OSError, ValueError, KeyError) as exc:  # a damaged output folder
        item.error = f"{folder}: cannot score: {exc}"
    return item


def _folders_by_slide(folders: Iterable[Path]) -> dict[Path, Path]:
    """Output folders by the resolved slide path their ``summary.json`` records (two slides
    of the same name from different folders get distinct folder names)."""
    found: dict[Path, Path] = {}
    for folder in folders:
        slide = (read_summary(folder) or {}).get("slide")
        if isinstance(slide, str) and slide:
            found.setdefault(Path(slide).resolve(), folder)
    return found


def _read_summary(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {"error": f"{path}: unreadable summary: {exc}"}
    missing = [k for k in ("output_downsample", "class_names") if k not in summary]
    if missing:
        return {"error": f"{path}: summary lacks {', '.join(missing)}"}
    return summary


def _agreed(summaries: dict[Path, dict[str, Any]], key: str, where: Path, hint: str = "") -> Any:
    values = {json.dumps(s[key]) for s in summaries.values() if key in s}
    if not values:
        raise RaznError(f"no readable summary.json gives {key}", where)
    if len(values) > 1:
        raise RaznError(f"outputs disagree on {key} ({', '.join(sorted(values))}){hint}", where)
    return json.loads(values.pop())
