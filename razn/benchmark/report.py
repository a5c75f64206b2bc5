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


def _select(
    rows: Sequence[dict[str, Any]], mode: str, variant: str = "clean", **match: Any
) -> list[dict[str, Any]]:
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
    """The benchmark's targets (learned zooming that earns its keep), each with its figure."""
    at_lambda: dict[str, Any] = {"lambda": default_lambda}  # "lambda" is a keyword
    razn = _select(rows, "razn", **at_lambda)
    cip = _select(rows, "cip")
    curve = [r for r in _select(rows, "razn") if r.get("lambda") is not None]
    targets = [
        _pareto_target(rows, curve),
        _full_resolution_target(curve, cip),
        _near_cip_target(curve, cip, _select(rows, "oracle")),
        _default_lambda_target(razn, cip, _select(rows, "oracle", **at_lambda)),
        _oracle_target(rows, razn, default_lambda),
        _matched_target(razn, _matched(rows, "val"), _matched(rows, "test")),
        _zoom_matters_target(_select(rows, "ud"), cip),
        _noise_target(rows, default_lambda),
        _per_class_target(razn, cip),
    ]
    return targets


def _best_dice_within(curve: Sequence[dict[str, Any]], seconds: float) -> float | None:
    """The best razn Dice of the sweep within ``seconds`` (None if no λ is that fast)."""
    dice = [r["dice"] for r in curve if r["seconds"] <= seconds]
    return max(dice) if dice else None


def _fastest_reaching(curve: Sequence[dict[str, Any]], dice: float) -> float | None:
    """The fewest razn seconds of the sweep at a Dice of at least ``dice``."""
    seconds = [r["seconds"] for r in curve if r["dice"] >= dice]
    return min(seconds) if seconds else None


def _pareto_target(rows: Sequence[dict[str, Any]], curve: Sequence[dict[str, Any]]) -> Target:
    text = (
        "Pareto: for every baseline some razn λ reaches its Dice in <= 1.05 x its seconds; "
        "against fixed-i and uncertainty razn is >= 0.005 Dice ahead at equal seconds or "
        "needs >= 15 % fewer seconds at equal Dice"
    )
    baselines = [
        r
        for r in rows
        if r["variant"] == "clean"
        and (r["mode"] in ("ud", "uncertainty", "random") or r["mode"].startswith("fixed-"))
    ]
    if not (curve and baselines):
        return Target(1, text, "not run", None)
    parts, met = [], True
    for b in baselines:
        name = b["mode"] + (f" s{b['seed']}" if b.get("seed") is not None else "")
        name += " (test compute)" if b.get("matched_on") == "test" else ""
        fastest = _fastest_reaching(curve, b["dice"])
        reached = fastest is not None and fastest <= 1.05 * b["seconds"]
        figure = f"{name}: " + (
            f"{fastest / b['seconds']:.2f}x its s" if fastest is not None else "Dice not reached"
        )
        if b["mode"] == "uncertainty" or b["mode"].startswith("fixed-"):
            best = _best_dice_within(curve, b["seconds"])
            lead = None if best is None else best - b["dice"]
            saving = None if fastest is None else 1 - fastest / b["seconds"]
            ahead = (lead is not None and lead >= 0.005) or (saving is not None and saving >= 0.15)
            figure += (
                f" (Dice lead at its s {'n/a' if lead is None else f'{lead:+.4f}'}, "
                f"saving at its Dice {'n/a' if saving is None else f'{saving:.0%}'})"
            )
            reached = reached and ahead
        met = met and reached
        parts.append(figure)
    return Target(1, text, "; ".join(parts), met)


def _full_resolution_target(
    curve: Sequence[dict[str, Any]], cip: Sequence[dict[str, Any]]
) -> Target:
    text = "never slower than full resolution: razn at the smallest λ <= 1.05 x cip's seconds"
    if not (curve and cip):
        return Target(2, text, "not run", None)
    smallest = min(r["lambda"] for r in curve)
    seconds = float(np.mean([r["seconds"] for r in curve if r["lambda"] == smallest]))
    ratio = seconds / cip[0]["seconds"]
    figure = f"λ={smallest:g}: {seconds:.1f} s / {cip[0]['seconds']:.1f} s = {ratio:.3f}"
    return Target(2, text, figure, ratio <= 1.05)


def _near_cip_target(
    curve: Sequence[dict[str, Any]],
    cip: Sequence[dict[str, Any]],
    oracle: Sequence[dict[str, Any]] = (),
) -> Target:
    text = (
        "near-cip accuracy at half the time: some λ with Dice >= 0.995 x cip at <= 0.5 x cip's s "
        "(if the oracle cannot: razn meets the oracle's best such point within 1.2 x its patches)"
    )
    if not (curve and cip):
        return Target(3, text, "not run", None)
    c = cip[0]
    best = _best_within_half(curve, c)
    if best is None:
        return Target(3, text, "no λ within 0.5 x cip's seconds", False)
    ratio = best["dice"] / c["dice"]
    figure = (
        f"best within 0.5 x cip: λ={best['lambda']:g} Dice {best['dice']:.4f} = {ratio:.4f} x cip "
        f"in {best['seconds'] / c['seconds']:.2f} x its seconds"
    )
    if ratio >= 0.995:
        return Target(3, text, figure, True)
    ceiling = _best_within_half(oracle, c)
    if ceiling is None:
        return Target(3, text, figure, False)
    ceiling_ratio = ceiling["dice"] / c["dice"]
    figure += (
        f"; the oracle's best: λ={ceiling['lambda']:g} {ceiling_ratio:.4f} x cip in "
        f"{ceiling['seconds'] / c['seconds']:.2f} x"
    )
    if ceiling_ratio >= 0.995:
        return Target(3, text, figure + " (the oracle meets it)", False)
    fallback, met = _meets_oracle_point(curve, ceiling)
    return Target(3, text, f"{figure}, so the fallback applies: {fallback}", met)


def _best_within_half(
    curve: Sequence[dict[str, Any]], cip: dict[str, Any]
) -> dict[str, Any] | None:
    """The row of ``curve`` with the best Dice within half of cip's seconds."""
    fast = [r for r in curve if r["seconds"] <= 0.5 * cip["seconds"]]
    return max(fast, key=lambda r: r["dice"], default=None)


def _meets_oracle_point(curve: Sequence[dict[str, Any]], point: dict[str, Any]) -> tuple[str, bool]:
    """Whether some razn λ reaches the oracle ``point``'s Dice with at most 1.2 x its patches,
    and the figure: the fewest razn patches at that Dice."""
    patches = sum(point["patches"])
    reaching = [r for r in curve if r["dice"] >= point["dice"]]
    fewest = min(reaching, key=lambda r: sum(r["patches"]), default=None)
    if fewest is None:
        best = max(curve, key=lambda r: r["dice"])
        return (f"no razn λ reaches the oracle's Dice {point['dice']:.4f} (best "
                f"{best['dice']:.4f})"), False  # fmt: skip
    ratio = sum(fewest["patches"]) / max(patches, 1)
    figure = (
        f"razn λ={fewest['lambda']:g} reaches the oracle's Dice {point['dice']:.4f} with "
        f"{sum(fewest['patches'])} / {patches} = {ratio:.2f} x its patches"
    )
    return figure, ratio <= 1.2


def _default_lambda_target(
    razn: Sequence[dict[str, Any]],
    cip: Sequence[dict[str, Any]],
    oracle: Sequence[dict[str, Any]] = (),
) -> Target:
    text = (
        "at the default λ: Dice >= 0.98 x cip at <= 0.30 x cip's seconds (mean over seeds; if "
        "the oracle cannot: razn meets the oracle's point at that λ within 1.2 x its patches)"
    )
    if not (razn and cip):
        return Target(4, text, "not run", None)
    dice, dice_sd = _mean_std([r["dice"] for r in razn])
    seconds, seconds_sd = _mean_std([r["seconds"] for r in razn])
    ratio, time_ratio = dice / cip[0]["dice"], seconds / cip[0]["seconds"]
    figure = (
        f"Dice {dice:.4f} ± {dice_sd:.4f} / {cip[0]['dice']:.4f} = {ratio:.3f}; "
        f"{seconds:.1f} ± {seconds_sd:.1f} s / {cip[0]['seconds']:.1f} s = {time_ratio:.3f}"
    )
    if (ratio >= 0.98 and time_ratio <= 0.30) or not oracle:
        return Target(4, text, figure, ratio >= 0.98 and time_ratio <= 0.30)
    o = oracle[0]
    o_ratio, o_time = o["dice"] / cip[0]["dice"], o["seconds"] / cip[0]["seconds"]
    figure += f"; the oracle at that λ: {o_ratio:.3f} x cip's Dice in {o_time:.3f} x its seconds"
    if o_ratio >= 0.98 and o_time <= 0.30:
        return Target(4, text, figure + " (the oracle meets it)", False)
    patches = float(np.mean([sum(r["patches"]) for r in razn]))
    patch_ratio = patches / max(sum(o["patches"]), 1)
    met = dice >= o["dice"] and patch_ratio <= 1.2
    figure += (
        f", so the fallback applies: razn Dice {dice:.4f} against the oracle's {o['dice']:.4f} "
        f"with {patch_ratio:.2f} x its patches"
    )
    return Target(4, text, figure, met)


def _oracle_target(
    rows: Sequence[dict[str, Any]], razn: Sequence[dict[str, Any]], default_lambda: float
) -> Target:
    text = "close to the limit: razn patches <= 1.2 x the oracle's at the same λ, Dice within 0.005"
    at_lambda: dict[str, Any] = {"lambda": default_lambda}  # "lambda" is a keyword
    oracle = _select(rows, "oracle", **at_lambda)
    if not (razn and oracle):
        return Target(5, text, "not run", None)
    patches = float(np.mean([sum(r["patches"]) for r in razn]))
    dice = float(np.mean([r["dice"] for r in razn]))
    ratio = patches / max(sum(oracle[0]["patches"]), 1)
    gap = oracle[0]["dice"] - dice
    figure = (
        f"λ={default_lambda:g}: patches {patches:.0f} / {sum(oracle[0]['patches'])} = "
        f"{ratio:.2f}; Dice {dice:.4f} vs oracle {oracle[0]['dice']:.4f} (gap {gap:+.4f})"
    )
    return Target(5, text, figure, ratio <= 1.2 and gap <= 0.005)


def _zoom_matters_target(ud: Sequence[dict[str, Any]], cip: Sequence[dict[str, Any]]) -> Target:
    text = "zooming matters: ud Dice at least 0.10 below cip"
    if not (ud and cip):
        return Target(7, text, "not run", None)
    gap = cip[0]["dice"] - ud[0]["dice"]
    figure = f"{ud[0]['dice']:.4f} vs {cip[0]['dice']:.4f} (gap {gap:.4f})"
    return Target(7, text, figure, gap >= 0.10)


def _matched(rows: Sequence[dict[str, Any]], on: str) -> dict[str, list[dict[str, Any]]]:
    """The ``uncertainty`` and ``random`` rows matched on the test slides' compute (``on`` =
    "test") or on the ``match_split`` slides (anything else; rows older than the test
    matching carry no ``matched_on``)."""
    return {
        mode: [r for r in _select(rows, mode) if (r.get("matched_on") == "test") == (on == "test")]
        for mode in ("uncertainty", "random")
    }


def _matched_target(
    razn: Sequence[dict[str, Any]],
    on_val: dict[str, list[dict[str, Any]]],
    on_test: dict[str, list[dict[str, Any]]],
) -> Target:
    """razn at the default λ against the matched baselines, judged on the rows matched to
    its test compute when there are any (equal compute exactly), else the val-matched."""
    text = "at matched compute razn >= uncertainty and clearly > random (mean ± sd over seeds)"
    groups = [(name, group) for name, group in (("test", on_test), ("val", on_val))
              if group["uncertainty"] and group["random"]]  # fmt: skip
    if not (razn and groups):
        return Target(6, text, "not run", None)
    r_mean, r_std = _mean_std([r["dice"] for r in razn])
    r_patches = float(np.mean([sum(r["patches"]) for r in razn]))
    figures, verdicts = [], []
    for name, group in groups:
        u_mean, u_std = _mean_std([r["dice"] for r in group["uncertainty"]])
        q_mean, q_std = _mean_std([r["dice"] for r in group["random"]])
        u_patches, q_patches = (
            float(np.mean([sum(r["patches"]) for r in group[mode]]))
            for mode in ("uncertainty", "random")
        )
        figures.append(
            f"matched on {name}: uncertainty {u_mean:.4f} ± {u_std:.4f}, random "
            f"{q_mean:.4f} ± {q_std:.4f}; patches {r_patches:.0f} / {u_patches:.0f} / "
            f"{q_patches:.0f}"
        )
        clearly = r_mean - q_mean > max(0.005, 2 * max(r_std, q_std))
        verdicts.append(r_mean >= u_mean and clearly)
    figure = f"razn {r_mean:.4f} ± {r_std:.4f} (n={len(razn)}); " + "; ".join(figures)
    return Target(6, text, figure, verdicts[0])


def _per_class_target(razn: Sequence[dict[str, Any]], cip: Sequence[dict[str, Any]]) -> Target:
    text = "every class at the default λ: each foreground class's Dice >= 0.95 x its cip Dice (mean over seeds)"
    if not (razn and cip) or any("dice_per_class" not in r for r in [*razn, cip[0]]):
        return Target(9, text, "not run", None)
    names = list(cip[0]["dice_per_class"])[1:]  # class 0 is the background
    parts, met = [], True
    for name in names:
        dice = float(np.mean([r["dice_per_class"][name] for r in razn]))
        reference = cip[0]["dice_per_class"][name]
        ratio = dice / reference if reference > 0 else float("nan")
        met = met and ratio >= 0.95
        parts.append(f"{name} {dice:.4f} / {reference:.4f} = {ratio:.3f}")
    return Target(9, text, "; ".join(parts), met)


def _noise_target(rows, default_lambda: float) -> Target:
    text = "trained on noisy labels: razn against cip (report)"
    razn = _select(rows, "razn", "noisy", **{"lambda": default_lambda})
    cip = _select(rows, "cip", "noisy")
    if not (razn and cip):
        return Target(8, text, "not run", None)
    ratio = razn[0]["dice"] / cip[0]["dice"]
    figure = (
        f"razn {razn[0]['dice']:.4f} vs cip {cip[0]['dice']:.4f} (ratio {ratio:.3f}); "
        f"seconds {razn[0]['seconds']:.1f} vs {cip[0]['seconds']:.1f}"
    )
    return Target(8, text, figure, ratio >= 0.98)


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
        "seconds: engine time summed over the test slides (read, segment, policy, write)"
        + (
            f", each slide's the median of {config.timing_repeats} timed runs (rounds over "
            "every mode in turning order, after an untimed warm-up pass)"
            if config.timing_repeats > 1
            else ""
        )
        + "; patches: f_i segmentations per level; zoomed: nodes per level that zoomed; "
        "refined: quadrants per level a refine level sent one level finer.",
        "",
    ]
    if selection:
        candidates = ", ".join(
            f"λ = {c['lambda']:g}: {c['dice']:.4f}" for c in selection["candidates"]
        )
        candidates += "".join(
            f"; bisected λ = {c['lambda']:g}: {c['dice']:.4f} "
            f"({'holds' if c['held'] else 'misses'})"
            for c in selection.get("refined", ())
        )
        lines += [
            f"Default λ chosen on the {selection['split']} slides ({selection['rule']}): "
            f"{candidates}; cip {selection['cip_dice']:.4f}."
            + "".join(
                f" Over seeds at λ = {c['lambda']:g}: "
                f"{', '.join(f'{d:.4f}' for d in c['seed_dice'])} (mean {c['mean_dice']:.4f})."
                for c in selection.get("seed_checks", ())
            )
            + ("" if selection["met"] else " No λ reached it: the smallest is used."),
            "",
        ]
    lines += [
        "| run | mode | λ | seed | Dice | IoU | Dice per class | seconds | patches per level "
        "| zoomed per level | refined per level | level-0 Mpx read |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_class = ", ".join(f"{k} {v:.4f}" for k, v in r["dice_per_class"].items())
        lam = "" if r["lambda"] is None else f"{r['lambda']:g}"
        seed = "" if r["seed"] is None else str(r["seed"])
        mode = r["mode"] + (" (test compute)" if r.get("matched_on") == "test" else "")
        lines.append(
            f"| {r['variant']} | {mode} | {lam} | {seed} | {r['dice']:.4f} | {r['iou']:.4f} "
            f"| {per_class} | {r['seconds']:.1f} | {' / '.join(map(str, r['patches']))} "
            f"| {' / '.join(map(str, r.get('zoomed') or [0] * len(r['patches'])))} "
            f"| {' / '.join(map(str, r.get('refined') or [0] * len(r['patches'])))} "
            f"| {r['level0_pixels_read'] / 1e6:.0f} |"
        )
    lines += decided_levels_section(rows, default_lambda)
    lines += ["", "## Targets", "", "| # | target | measured | met |", "|---|---|---|---|"]
    for t in targets:
        met = {True: "yes", False: "**no**", None: "—"}[t.met]
        lines.append(f"| {t.number} | {t.text} | {t.figure} | {met} |")
    lines += ["", f"Whole benchmark wall time: {wall_seconds / 60:.1f} min.", ""]
    return "\n".join(lines)


def decided_levels_section(rows: Sequence[dict[str, Any]], default_lambda: float) -> list[str]:
    """``results.md``'s table of where each true class's area was decided: razn at the
    default λ (first seed), the oracle at that λ and the first matched ``uncertainty``;
    ``[]`` when the rows carry no ``class_area_by_level``."""

    def first(mode: str, lam: float | None) -> dict[str, Any] | None:
        for r in rows:
            same_lambda = lam is None or (r["lambda"] is not None and np.isclose(r["lambda"], lam))
            if r["variant"] == "clean" and r["mode"] == mode and same_lambda:
                return r if r.get("class_area_by_level") else None
        return None

    chosen = [first("razn", default_lambda), first("oracle", default_lambda),
              first("uncertainty", None)]  # fmt: skip
    chosen_rows = [r for r in chosen if r is not None]
    if not chosen_rows:
        return []
    levels = len(next(iter(chosen_rows[0]["class_area_by_level"].values())))
    lines = [
        "",
        "## Where each class was decided",
        "",
        "Share of each true class's area (test slides pooled, on the scoring grid) decided "
        "at each working level, coarsest first.",
        "",
        "| mode | λ | class | " + " | ".join(f"level {k}" for k in range(levels)) + " |",
        "|---|---|---|" + "---|" * levels,
    ]
    for r in chosen_rows:
        lam = "" if r["lambda"] is None else f"{r['lambda']:g}"
        for name, shares in r["class_area_by_level"].items():
            cells = " | ".join(f"{100 * x:.1f} %" for x in shares)
            lines.append(f"| {r['mode']} | {lam} | {name} | {cells} |")
    return lines


def plot_pareto(rows: Sequence[dict[str, Any]], path: Path, default_lambda: float) -> None:
    """Dice against seconds per test slide: razn as a curve over λ, the other modes as points
    (:func:`razn.inspection.figures.pareto_figure`)."""
    from razn.inspection.figures import pareto_figure

    pareto_figure(rows, default_lambda).savefig(path)
