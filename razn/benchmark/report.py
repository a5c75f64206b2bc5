"""The benchmark's outputs: ``results.json`` (rows), ``results.md`` (table and targets),
``benchmark.json`` (settings, wall time, targets) and ``pareto.png``.

Dice and IoU are the **foreground** mean (every class but background) of the confusion
matrix pooled over all test slides; per-class values are in the rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from razn.benchmark.config import BenchmarkConfig
from razn.config import to_dict


@dataclass
class Target:
    """One target of the issue, its measured figure and whether it holds."""

    number: int
    text: str
    figure: str
    met: bool | None
    """None: not measured (a mode it needs was not run)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def write_reports(
    rows: Sequence[dict[str, Any]],
    out: Path,
    config: BenchmarkConfig,
    default_lambda: float,
    wall_seconds: float,
    selection: dict[str, Any] | None = None,
) -> list[Target]:
    """Write every report file into ``out`` and return the targets; ``selection`` is how the
    default λ was chosen (``lambda_selection.json``), if it was."""
    targets = evaluate_targets(rows, default_lambda)
    (out / "results.json").write_text(json.dumps(list(rows), indent=2) + "\n", encoding="utf-8")
    meta = {
        "config": to_dict(config),
        "default_lambda": default_lambda,
        "lambda_selection": selection,
        "wall_seconds": wall_seconds,
        "dice": "foreground mean over classes 1..K-1, pooled over the test slides",
        "targets": [t.as_dict() for t in targets],
    }
    (out / "benchmark.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(
        markdown(rows, targets, config, default_lambda, wall_seconds, selection),
        encoding="utf-8",
    )
    plot_pareto(rows, out / "pareto.png", default_lambda)
    return targets


def _select(rows: Sequence[dict[str, Any]], mode: str, variant: str = "clean", **match: Any):
    return [
        r
        for r in rows
        if r["mode"] == mode
        and r["variant"] == variant
        and all(_same(r.get(k), v) for k, v in match.items())
    ]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)
    return a == b


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def evaluate_targets(rows: Sequence[dict[str, Any]], default_lambda: float) -> list[Target]:
    """The six targets of the benchmark issue, each with its measured figure."""
    razn = _select(rows, "razn", **{"lambda": default_lambda})
    cip = _select(rows, "cip")
    ud = _select(rows, "ud")
    oracle = _select(rows, "oracle")
    uncertainty = _select(rows, "uncertainty")
    random = _select(rows, "random")
    targets = []
    if razn and cip:
        dice, _ = _mean_std([r["dice"] for r in razn])
        seconds, _ = _mean_std([r["seconds"] for r in razn])
        ratio = dice / cip[0]["dice"]
        targets.append(
            Target(
                1,
                "razn Dice >= 0.98 x cip",
                f"{dice:.4f} / {cip[0]['dice']:.4f} = {ratio:.3f}",
                ratio >= 0.98,
            )
        )
        time_ratio = seconds / cip[0]["seconds"]
        targets.append(
            Target(
                2,
                "razn seconds <= 0.5 x cip (aim 0.35)",
                f"{seconds:.1f} s / {cip[0]['seconds']:.1f} s = {time_ratio:.3f}",
                time_ratio <= 0.5,
            )
        )
    else:
        targets += [Target(1, "razn Dice >= 0.98 x cip", "not run", None)]
        targets += [Target(2, "razn seconds <= 0.5 x cip", "not run", None)]
    targets.append(_matched_target(razn, uncertainty, random))
    if razn and oracle:
        patches = float(np.mean([sum(r["patches"]) for r in razn]))
        dice = float(np.mean([r["dice"] for r in razn]))
        ratio = patches / sum(oracle[0]["patches"])
        gap = oracle[0]["dice"] - dice
        targets.append(
            Target(
                4,
                "razn patches <= 1.3 x oracle, Dice within 0.01 of oracle",
                f"patches {patches:.0f} / {sum(oracle[0]['patches'])} = {ratio:.2f}; "
                f"Dice {dice:.4f} vs oracle {oracle[0]['dice']:.4f} (gap {gap:+.4f})",
                ratio <= 1.3 and gap <= 0.01,
            )
        )
    else:
        targets.append(Target(4, "razn patches <= 1.3 x oracle", "not run", None))
    if ud and cip:
        gap = cip[0]["dice"] - ud[0]["dice"]
        targets.append(
            Target(
                5,
                "ud Dice at least 0.10 below cip",
                f"{ud[0]['dice']:.4f} vs {cip[0]['dice']:.4f} (gap {gap:.4f})",
                gap >= 0.10,
            )
        )
    else:
        targets.append(Target(5, "ud Dice at least 0.10 below cip", "not run", None))
    targets.append(_noise_target(rows, default_lambda))
    return targets


def _matched_target(razn, uncertainty, random) -> Target:
    text = "at matched compute razn >= uncertainty and clearly > random (mean ± sd over seeds)"
    if not (razn and uncertainty and random):
        return Target(3, text, "not run", None)
    r_mean, r_std = _mean_std([r["dice"] for r in razn])
    u_mean, u_std = _mean_std([r["dice"] for r in uncertainty])
    q_mean, q_std = _mean_std([r["dice"] for r in random])
    patches = {
        name: float(np.mean([sum(r["patches"]) for r in group]))
        for name, group in (("razn", razn), ("uncertainty", uncertainty), ("random", random))
    }
    figure = (
        f"razn {r_mean:.4f} ± {r_std:.4f} (n={len(razn)}), uncertainty {u_mean:.4f} ± {u_std:.4f}, "
        f"random {q_mean:.4f} ± {q_std:.4f}; patches {patches['razn']:.0f} / "
        f"{patches['uncertainty']:.0f} / {patches['random']:.0f}"
    )
    clearly = r_mean - q_mean > max(0.005, 2 * max(r_std, q_std))
    return Target(3, text, figure, r_mean >= u_mean and clearly)


def _noise_target(rows, default_lambda: float) -> Target:
    text = "trained on noisy labels: razn against cip (report)"
    razn = _select(rows, "razn", "noisy", **{"lambda": default_lambda})
    cip = _select(rows, "cip", "noisy")
    if not (razn and cip):
        return Target(6, text, "not run", None)
    ratio = razn[0]["dice"] / cip[0]["dice"]
    figure = (
        f"razn {razn[0]['dice']:.4f} vs cip {cip[0]['dice']:.4f} (ratio {ratio:.3f}); "
        f"seconds {razn[0]['seconds']:.1f} vs {cip[0]['seconds']:.1f}"
    )
    return Target(6, text, figure, ratio >= 0.98)


def markdown(
    rows: Sequence[dict[str, Any]],
    targets: Sequence[Target],
    config: BenchmarkConfig,
    default_lambda: float,
    wall_seconds: float,
    selection: dict[str, Any] | None = None,
) -> str:
    """``results.md``: how the default λ was chosen, the table of every row, then the targets."""
    spec = config.dataset
    slides = rows[0]["slides"] if rows else 0
    lines = [
        f"# razn benchmark: {config.name}",
        "",
        f"{slides} held-out test slides of {spec.size[0]}×{spec.size[1]} px (dataset seed "
        f"{spec.seed}); default λ = {default_lambda:g}; Dice and IoU: foreground classes, "
        f"pooled over the test slides, at downsample {config.evaluation_downsample:g}; "
        "seconds: engine time summed over the test slides (read, segment, policy, write); "
        "patches: f_i segmentations per level; gated: nodes per level zoomed by the image-only "
        "gate without f_i.",
        "",
    ]
    if selection:
        candidates = ", ".join(
            f"λ = {c['lambda']:g}: {c['dice']:.4f}" for c in selection["candidates"]
        )
        lines += [
            f"Default λ chosen on the {selection['split']} slides ({selection['rule']}): "
            f"{candidates}; cip {selection['cip_dice']:.4f}."
            + ("" if selection["met"] else " No λ reached it: the smallest is used."),
            "",
        ]
    lines += [
        "| run | mode | λ | seed | Dice | IoU | Dice per class | seconds | patches per level "
        "| gated per level | level-0 Mpx read |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_class = ", ".join(f"{k} {v:.4f}" for k, v in r["dice_per_class"].items())
        lam = "" if r["lambda"] is None else f"{r['lambda']:g}"
        seed = "" if r["seed"] is None else str(r["seed"])
        lines.append(
            f"| {r['variant']} | {r['mode']} | {lam} | {seed} | {r['dice']:.4f} | {r['iou']:.4f} "
            f"| {per_class} | {r['seconds']:.1f} | {' / '.join(map(str, r['patches']))} "
            f"| {' / '.join(map(str, r.get('gated') or [0] * len(r['patches'])))} "
            f"| {r['level0_pixels_read'] / 1e6:.0f} |"
        )
    lines += ["", "## Targets", "", "| # | target | measured | met |", "|---|---|---|---|"]
    for t in targets:
        met = {True: "yes", False: "**no**", None: "—"}[t.met]
        lines.append(f"| {t.number} | {t.text} | {t.figure} | {met} |")
    lines += ["", f"Whole benchmark wall time: {wall_seconds / 60:.1f} min.", ""]
    return "\n".join(lines)


def plot_pareto(rows: Sequence[dict[str, Any]], path: Path, default_lambda: float) -> None:
    """Dice against seconds per test slide: razn as a curve over λ, the other modes as points
    (:func:`razn.inspection.figures.pareto_figure`)."""
    from razn.inspection.figures import pareto_figure

    pareto_figure(rows, default_lambda).savefig(path)
