"""Refinement: a break at a refine level sends only the quadrants worth it one level finer.

Hand-built trees with known answers for the rewards, the oracle, the reached nodes and
the costs; the engine on exact colour segmenters; and a tiny run trained with refine
levels through the CLI, segmented with its h_i.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zarr
from test_engine import ColourSegmenter, blob_image, config_for, full_tissue

from razn.benchmark.matching import zoom_shares
from razn.engine import FixedLevel, ZoomEngine
from razn.engine.deciders import PlannedZoom
from razn.policy.budget import validation_cost
from razn.rewards import (
    Refinement,
    RewardConfig,
    follow_policies,
    oracle_plan,
    reached_nodes,
    refine_rewards,
    zoom_gain,
)
from razn.slide import ArraySlide

# Two levels (r = 2): one root whose f_0 gets 100 pixels wrong, 70 of them in its
# top-left quadrant; f_1 gets 2 wrong there and 10 in each other quadrant.
ERRORS = [np.array([[[100.0]]]), np.array([[[2.0, 10.0], [10.0, 10.0]]])]
PARENT = np.array([[[70.0, 10.0], [10.0, 10.0]]])  # f_0's errors per quadrant
AREA = [np.array([[[4000.0]]]), np.full((1, 2, 2), 1000.0)]
TISSUE = [np.ones((1, 1, 1), bool), np.ones((1, 2, 2), bool)]
CONFIG = RewardConfig(lam=0.5, policy_cost=0.25)
UNIT = 100.0  # pixels of one finest patch at the evaluation resolution


def _refinement(refine: dict[int, np.ndarray] | None = None) -> Refinement:
    return Refinement(frozenset({0}), [None, PARENT], TISSUE, refine or {})


def test_refining_a_quadrant_earns_its_fixed_pixels_less_one_patch():
    rewards = refine_rewards(ERRORS, AREA[1], {}, 0, 2, CONFIG, UNIT, _refinement())
    # (70 − 2) / 100 − 0.5 × 1 segmentation; the others fix nothing and pay the same.
    np.testing.assert_allclose(rewards, [[[0.68 - 0.5, -0.5], [-0.5, -0.5]]])


def test_a_refined_break_keeps_the_parent_where_it_does_not_refine():
    only_first = np.array([[[True, False], [False, False]]])
    outcome = follow_policies(ERRORS, {0: np.array([[[False]]])}, 0, 2, True, _refinement())
    assert outcome.errors[0, 0, 0] == 100  # asked, refined nothing: f_0's own errors
    assert outcome.segmentations[0, 0, 0] == 1
    assert outcome.policy_calls[0, 0, 0] == 1 + 4  # g_0 and h_0 on each tissue quadrant
    refined = _refinement({0: only_first})
    outcome = follow_policies(ERRORS, {0: np.array([[[False]]])}, 0, 2, True, refined)
    assert outcome.errors[0, 0, 0] == 2 + 10 + 10 + 10
    assert outcome.segmentations[0, 0, 0] == 1 + 1  # nothing segmented is thrown away


def test_the_zoom_is_judged_against_the_refined_break():
    refined = _refinement({0: np.array([[[True, False], [False, False]]])})
    gain = zoom_gain(ERRORS, AREA[0], {}, 0, 2, CONFIG, UNIT, True, refined)
    # zoom: 32 errors, 4 patches; refined break: 32 errors, 2 patches and 4 h calls
    assert gain[0, 0, 0] == pytest.approx(0.0 - 0.5 * (4 - (2 + 0.25 * 4)))
    plain = zoom_gain(ERRORS, AREA[0], {}, 0, 2, CONFIG, UNIT, True, None)
    assert plain[0, 0, 0] == pytest.approx((100 - 32) / 100 - 0.5 * 3)


def test_the_oracle_refines_first_then_zooms_against_it():
    plan = oracle_plan(ERRORS, AREA, CONFIG, 2, UNIT, True, _refinement())
    np.testing.assert_array_equal(plan.refine[0], [[[True, False], [False, False]]])
    assert not plan.zoom[0][0, 0, 0]  # the refined break is cheaper at the same error
    # f_0 errs evenly, f_1 fixes every quadrant: all refined, and then a zoom (4 patches)
    # beats the break that pays 1 + 4 of them and 4 h calls for the same errors
    errors = [ERRORS[0], np.full((1, 2, 2), 2.0)]
    even = Refinement(frozenset({0}), [None, np.full((1, 2, 2), 25.0)], TISSUE)
    plan = oracle_plan(errors, AREA, RewardConfig(lam=0.001, policy_cost=0.25), 2, UNIT, True, even)
    assert plan.refine[0].all()
    assert plan.zoom[0][0, 0, 0]
    assert plan.rewards[0][0, 0, 0] == pytest.approx(-0.001 * (4 - (5 + 0.25 * 4)))


def test_only_tissue_quadrants_are_asked_and_refined():
    tissue = [TISSUE[0], np.array([[[True, False], [True, False]]])]
    refinement = Refinement(frozenset({0}), [None, PARENT], tissue, {0: np.ones((1, 2, 2), bool)})
    outcome = follow_policies(ERRORS, {0: np.array([[[False]]])}, 0, 2, True, refinement)
    assert outcome.policy_calls[0, 0, 0] == 1 + 2
    assert outcome.segmentations[0, 0, 0] == 1 + 2
    assert outcome.errors[0, 0, 0] == 2 + 10 + 10 + 10  # left column refined


def test_refined_quadrants_are_reached_and_counted():
    # three levels: the root zooms, child (0, 0) breaks and refines two of its quadrants
    zoom = {0: np.ones((1, 1, 1), bool), 1: np.zeros((1, 2, 2), bool)}
    tissue = [np.ones((1, 1, 1), bool), np.ones((1, 2, 2), bool), np.ones((1, 4, 4), bool)]
    refine = {1: np.zeros((1, 4, 4), bool)}
    refine[1][0, 0, 0] = refine[1][0, 1, 1] = True  # under child (0, 0)
    refine[1][0, 3, 3] = True  # under child (1, 1)
    cost = validation_cost(zoom, tissue, 2, 0.01, ["val"], refine)
    assert cost.patches == [0, 4, 3]
    assert cost.cip_patches == 16
    # as a share of zooms for baselines that cannot refine: 3 quadrants = 3 / (4 − 1) zooms
    assert zoom_shares(zoom, tissue[:2], 2, refine) == [1.0, pytest.approx(1 / 4)]
    reached = reached_nodes(zoom, tissue, 2, refine)
    assert reached[2].sum() == 3


@dataclass
class BreakAndRefine:
    """Zooms down to ``level``, breaks there and refines the quadrants ``chosen`` says."""

    level: int
    chosen: str  # "all" or "none" or "left"
    name: str = "refine"
    observes: str = "nothing"
    refine_observes: str = "segmentation"

    @property
    def refine_levels(self) -> frozenset[int]:
        return frozenset({self.level})

    def decide(self, level, nodes, observations):
        zoom = np.full(len(nodes), level < self.level)
        return zoom, zoom.astype(np.float32)

    def refine_quadrants(self, level, quadrants, observations):
        assert observations is not None and observations["seg"].shape[0] == len(quadrants)
        assert observations["image"].shape[1:] == (3, 36, 36)
        if self.chosen == "left":
            refine = np.array([q.col % 2 == 0 for q in quadrants])
        else:
            refine = np.full(len(quadrants), self.chosen == "all")
        return refine, refine.astype(np.float32)


def _labels(tmp_path, name, decider, slide):
    models = [ColourSegmenter() for _ in range(3)]
    engine = ZoomEngine(models, decider, config_for())
    result = engine.segment(slide, tmp_path / f"{name}.zarr", tissue=full_tissue(slide.dimensions))
    return np.asarray(zarr.open_array(str(tmp_path / f"{name}.zarr"), mode="r")[:]), result


def test_refining_every_quadrant_gives_cip_labels_and_keeping_them_fixed_1(tmp_path):
    slide = ArraySlide([blob_image(203, 150)])
    cip, r_cip = _labels(tmp_path, "cip", FixedLevel(2, name="cip"), slide)
    fixed, r_fixed = _labels(tmp_path, "fixed", FixedLevel(1, name="fixed-1"), slide)
    everything, r_all = _labels(tmp_path, "all", BreakAndRefine(1, "all"), slide)
    nothing, r_none = _labels(tmp_path, "none", BreakAndRefine(1, "none"), slide)
    np.testing.assert_array_equal(everything, cip)
    np.testing.assert_array_equal(nothing, fixed)
    # every level-1 node is segmented, then every tissue quadrant again at level 2
    assert r_all.patches == [0, r_fixed.patches[1], r_cip.patches[2]]
    assert r_all.refined == [0, r_cip.patches[2], 0]
    assert r_none.patches == r_fixed.patches and r_none.refined == [0, 0, 0]


def test_a_partial_refinement_paints_the_finer_labels_over_the_parent_only_there(tmp_path):
    slide = ArraySlide([blob_image(203, 150)])
    cip, _ = _labels(tmp_path, "cip", FixedLevel(2, name="cip"), slide)
    fixed, _ = _labels(tmp_path, "fixed", FixedLevel(1, name="fixed-1"), slide)
    left, result = _labels(tmp_path, "left", BreakAndRefine(1, "left"), slide)
    columns = (np.arange(203) // 16) % 2 == 0  # finest patches (16 px) of even columns
    np.testing.assert_array_equal(left[:, columns], cip[:, columns])
    np.testing.assert_array_equal(left[:, ~columns], fixed[:, ~columns])
    assert result.patches[2] == result.refined[1] == 10 * 7  # 7 even columns of 13, 10 rows
    finest_rows = [r for r in result.decisions.rows if r[0] == 2]
    assert len(finest_rows) == 10 * 7 and all(r[1] % 2 == 0 for r in finest_rows)


def test_the_oracle_plays_back_its_planned_refinement(tmp_path):
    slide = ArraySlide([blob_image(128, 64)])  # two roots of 64 px, no ragged edge
    refine = {1: np.zeros((2, 4, 4), bool)}
    refine[1][1, :, :2] = True  # the second root's left half
    zoom = {0: np.ones((2, 1, 1), bool), 1: np.zeros((2, 2, 2), bool)}
    oracle = PlannedZoom(np.array([[0, 0], [1, 0]]), zoom, 2, refine=refine)
    _, result = _labels(tmp_path, "oracle", oracle, slide)
    assert result.patches == [0, 8, 8] and result.refined == [0, 8, 0]
    assert {(r[1], r[2]) for r in result.decisions.rows if r[0] == 2} == {
        (c, r) for c in (4, 5) for r in range(4)
    }


@pytest.mark.parametrize("patch", [32, 64])  # quadrants smaller than the 36-px view, and larger
def test_refine_policies_are_trained_on_exactly_what_the_engine_shows_them(tmp_path, patch):
    from test_env import TINY_MODEL, tiny_config

    from envs.reward_cache import ensure_slide_cache, read_tables
    from razn.models import create_segmenter, save_segmenter
    from razn.slide import open_slide, write_zarr_slide
    from razn.slide.tissue import detect_tissue

    rng = np.random.default_rng(2)
    image = np.full((200, 300, 3), 240, np.uint8)
    image[20:180, 30:270] = rng.integers(80, 200, (160, 240, 3))
    labels = np.zeros((200, 300), np.uint8)
    labels[60:140, 100:220] = 1
    slide_path = write_zarr_slide(tmp_path / "slide.zarr", [image], mpp=(1.0, 1.0), chunk=64)
    zarr.save_array(str(tmp_path / "mask.zarr"), labels)
    config = tiny_config(**{"levels.patch_size": patch})
    models = [create_segmenter(TINY_MODEL, 2).eval() for _ in range(3)]
    paths = [
        save_segmenter(m, TINY_MODEL, tmp_path / f"f{i}.safetensors") for i, m in enumerate(models)
    ]
    cache = ensure_slide_cache(
        slide_path, tmp_path / "mask.zarr", models, paths, config, tmp_path / "cache"
    )
    tables, roots = read_tables([cache])
    # f_j's errors per quadrant add up to its errors per node
    for j in (1, 2):
        parent = tables[j].parent_errors
        assert parent is not None
        r, n = parent.shape[0], parent.shape[1] // 2
        np.testing.assert_array_equal(
            parent.reshape(r, n, 2, n, 2).sum(axis=(2, 4)), tables[j - 1].errors
        )
    root_index = {(int(c), int(r)): k for k, (c, r) in enumerate(roots[0])}
    seen = {}

    @dataclass
    class Recorder:
        name: str = "recorder"
        observes: str = "image"
        refine_observes: str = "segmentation"
        refine_levels: frozenset[int] = frozenset({1})

        def decide(self, level, nodes, observations):
            zoom = np.full(len(nodes), level == 0)
            return zoom, zoom.astype(np.float32)

        def refine_quadrants(self, level, quadrants, observations):
            for i, node in enumerate(quadrants):
                seen[node] = {k: v[i] for k, v in observations.items()}
            return np.zeros(len(quadrants), bool), np.zeros(len(quadrants), np.float32)

    with open_slide(slide_path) as slide:
        engine = ZoomEngine(models, Recorder(), config)
        engine.segment(slide, tmp_path / "labels.zarr", tissue=detect_tissue(slide, config.tissue))
    assert seen
    shown = tables[2].parent_observations
    for node, observed in seen.items():
        k = root_index[(node.col // 4, node.row // 4)]
        for key, values in shown.items():
            cached = values[k, node.row % 4, node.col % 4]
            np.testing.assert_allclose(observed[key], cached, atol=1e-6, err_msg=key)
    # h is asked exactly about the quadrants the cache counts as tissue
    tissue = shown["stats"][..., 4] > 0
    assert len(seen) == int(tissue.sum())


def test_a_run_trained_with_refine_levels_segments_its_breaks_and_refinements(tiny_run, tmp_path):
    """The session's tiny run is trained with the default refine levels (the last)."""
    import json

    from click.testing import CliRunner

    from razn.cli import main
    from razn.policy.store import refine_path

    run = tiny_run / "run"
    folder = run / "policies" / "lam_0.01"
    assert refine_path(folder, 1).is_file() and not refine_path(folder, 0).exists()
    out = tmp_path / "out"
    slide = sorted((tiny_run / "data" / "slides").iterdir())[0]
    result = CliRunner().invoke(main, ["segment", str(slide), "--run", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(next(out.glob("*/summary.json")).read_text())
    decisions = next(out.glob("*/decisions.csv")).read_text().splitlines()[1:]
    rows = [line.split(",") for line in decisions]
    breaks = [sum(1 for r in rows if r[0] == str(lv) and r[5] == "break") for lv in range(3)]
    zooms = [sum(1 for r in rows if r[0] == str(lv) and r[5] == "zoom") for lv in range(3)]
    nodes = [sum(1 for r in rows if r[0] == str(lv)) for lv in range(3)]
    assert summary["patches"] == breaks  # f_i segments exactly the breaks of every level
    assert nodes[2] == 4 * zooms[1] + summary["refined"][1]  # zoomed children and refinements
    assert summary["refined"][0] == 0  # level 0 is not a refine level


def test_the_ceiling_script_prints_every_fixed_level_and_each_oracle_curve(tiny_run, capsys):
    from conftest import load_script

    from envs.reward_cache import read_tables
    from razn.benchmark.ceiling import ceiling_curves
    from razn.benchmark.workers import build_slide_cache
    from razn.data.manifest import read_manifest
    from razn.run_dir import RunDirectory

    script = load_script("oracle_ceiling")
    assert script.main(["--run", str(tiny_run / "run"), "--lambdas", "0.001", "1000"]) == 0
    table = capsys.readouterr().out
    for name in ("fixed-0", "fixed-2", "oracle, image-first", "oracle, refine last"):
        assert f"| {name} |" in table
    run = RunDirectory.open(tiny_run / "run")
    entries = read_manifest(run.config.data.manifest).split("val")
    paths = [Path(build_slide_cache(str(run.path), str(e.slide), str(e.mask))) for e in entries]
    tables, _ = read_tables(paths)
    points = ceiling_curves(tables, run.config, [1000.0], {"refine": frozenset({1})})
    by_name = {p.name: p for p in points}
    # at a λ no zoom or refinement can pay for, the oracle is ud exactly
    assert by_name["refine"].patches == by_name["fixed-0"].patches
    assert by_name["refine"].error == by_name["fixed-0"].error
