"""The image-only zoom gates: calibration, learning, files, and the engine skipping f_i."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from test_engine import Always, ColourSegmenter, blob_image, config_for, run

from razn.engine import ZoomEngine
from razn.errors import CheckpointError
from razn.policy.config import GateConfig
from razn.policy.gate import (
    Gate,
    GateNet,
    calibrate_threshold,
    gate_probability,
    gates_present,
    load_gates,
    remove_gates,
    train_gate,
)
from razn.slide import ArraySlide
from razn.train.gates import GateReport, fit_gates, gates_exist, save_gates


def test_the_threshold_is_the_lowest_that_keeps_the_precision():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.55])
    zoomed = np.array([True, True, False, True, False])
    # Precision of the top-k: 1, 1, 2/3, 3/4, 3/5.
    assert calibrate_threshold(p, zoomed, 0.75, 0.5) == 0.6
    assert calibrate_threshold(p, zoomed, 0.9, 0.5) == 0.8
    assert calibrate_threshold(p, zoomed, 0.6, 0.5) == 0.55
    assert calibrate_threshold(p, zoomed, 0.75, 0.65) == 0.8  # the floor cuts 0.6 off
    assert calibrate_threshold(p, ~zoomed, 0.5, 0.5) is None  # the most confident are wrong


def test_tied_probabilities_are_taken_all_or_none():
    p = np.array([0.9, 0.9, 0.8])
    assert calibrate_threshold(p, np.array([True, False, True]), 1.0, 0.5) is None
    assert calibrate_threshold(p, np.array([True, True, False]), 1.0, 0.5) == 0.9
    assert calibrate_threshold(np.array([0.3, 0.2]), np.array([True, True]), 0.9, 0.5) is None
    assert calibrate_threshold(np.zeros(0), np.zeros(0, bool), 0.9, 0.5) is None


def _bright_and_dark(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bright patches (g_i zooms) and dark ones (it breaks), with noise."""
    rng = np.random.default_rng(seed)
    zoomed = np.arange(count) % 2 == 0
    images = np.where(zoomed[:, None, None, None], 200, 50) + rng.integers(
        -30, 30, (count, 3, 36, 36)
    )
    return images.clip(0, 255).astype(np.uint8), zoomed


def test_a_gate_learns_a_decision_visible_in_the_image():
    images, zoomed = _bright_and_dark(64, 0)
    net = train_gate(images, np.ones(64), zoomed, GateConfig(epochs=15, batch_size=16), seed=0)
    test_images, test_zoomed = _bright_and_dark(32, 1)
    probability = gate_probability(net, test_images, np.ones(32))
    assert (probability[test_zoomed] > 0.9).all() and (probability[~test_zoomed] < 0.1).all()


def test_gates_round_trip_and_a_tampered_gate_is_refused(tmp_path):
    net = GateNet((8, 8))
    gates = {0: Gate(net, 0.7), 1: Gate(GateNet((8, 8)), None)}
    config = GateConfig(cnn_channels=(8, 8))
    reports = [
        GateReport(level, 10, 0.5, 5, gate.threshold, 1, 1.0, 0.5) for level, gate in gates.items()
    ]
    save_gates(tmp_path, gates, reports, config)
    assert gates_exist(tmp_path, config)
    assert not gates_exist(tmp_path, GateConfig())  # trained with other settings
    loaded = load_gates(tmp_path)
    assert sorted(loaded) == [0, 1]
    assert loaded[0].threshold == pytest.approx(0.7) and loaded[1].threshold is None
    images = np.full((2, 3, 36, 36), 120, np.uint8)
    np.testing.assert_allclose(
        loaded[0].probability(images, np.ones(2)), gate_probability(net, images, np.ones(2))
    )
    assert not loaded[1].decide(images, np.ones(2))[0].any()  # no threshold: never zooms
    path = tmp_path / "gate_0.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert not gates_exist(tmp_path, config)
    with pytest.raises(CheckpointError, match=r"gate_0\.safetensors.*SHA-256"):
        load_gates(tmp_path)
    remove_gates(tmp_path)
    assert not gates_present(tmp_path) and load_gates(tmp_path) == {}
    assert not list(tmp_path.glob("gate_*"))


def _table(images: np.ndarray, tissue: np.ndarray) -> SimpleNamespace:
    """A reward-cache level table holding observations ``(R, n, n, …)``."""
    stats = np.zeros((*tissue.shape, 7), np.float32)
    stats[..., 4] = tissue
    return SimpleNamespace(observations={"image": images, "stats": stats})


def test_fit_gates_calibrates_on_the_nodes_the_policies_reach():
    images, zoomed = _bright_and_dark(16, 0)
    train = [_table(images.reshape(4, 2, 2, 3, 36, 36), np.ones((4, 2, 2))), None]
    c_images, c_zoomed = _bright_and_dark(8, 1)
    tissue = np.ones((2, 2, 2))
    tissue[1, 1, 1] = 0  # no tissue: never asked about
    calibration = [_table(c_images.reshape(2, 2, 2, 3, 36, 36), tissue), None]
    # One decision level (level 0 of a two-level geometry) with rate 2: every node is a root's child.
    train_zoom = {0: zoomed.reshape(4, 2, 2)}
    calibration_zoom = {0: c_zoomed.reshape(2, 2, 2)}
    config = GateConfig(epochs=15, batch_size=8, precision=1.0)
    gates, reports = fit_gates(train, train_zoom, calibration, calibration_zoom, config, 2, 0)
    (report,) = reports
    assert report.train_nodes == 16 and report.train_zoom_share == 0.5
    assert report.calibration_nodes == 7
    assert report.precision == 1.0 and report.gated == int(
        c_zoomed.reshape(2, 2, 2)[tissue > 0].sum()
    )
    assert report.recall == 1.0 and gates[0].threshold is not None


@dataclass
class GatedAlways(Always):
    """Zooms everything at level 0 through its gate, and decides like ``Always`` otherwise."""

    calls: int = 0

    def gate(self, level, images, tissue_share):
        assert images.shape[1:] == (3, 36, 36) and images.dtype == np.uint8
        if level != 0:
            return None
        return np.ones(len(images), bool), np.full(len(images), 0.99, np.float32)

    def decide(self, level, nodes, observations):
        assert level != 0  # level 0 is decided by the gate alone
        return super().decide(level, nodes, observations)


def test_gated_nodes_are_zoomed_without_being_segmented(tmp_path):
    slide = ArraySlide([blob_image(203, 150)])
    models = [ColourSegmenter() for _ in range(3)]
    config = config_for()
    gated, r_gated = run(ZoomEngine(models, GatedAlways(True), config), slide, tmp_path, "g")
    plain, r_plain = run(ZoomEngine(models, Always(True), config), slide, tmp_path, "p")
    np.testing.assert_array_equal(gated, plain)
    assert r_plain.patches == [4 * 3, 7 * 5, 13 * 10]
    assert r_gated.patches == [0, 7 * 5, 13 * 10]  # f_0 never ran
    assert r_gated.gated == [4 * 3, 0, 0]
    zooms = [row for row in r_gated.decisions.rows if row[0] == 0]
    assert {row[5] for row in zooms} == {"zoom"}
    np.testing.assert_allclose([row[6] for row in zooms], 0.99, rtol=1e-6)
