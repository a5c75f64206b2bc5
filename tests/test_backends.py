"""Inference backends: OpenVINO gives eager torch's labels, from a graph derived from the
run's weights and named by their digest; a missing package or a GPU is a clear error."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import zarr
from click.testing import CliRunner
from conftest import SHARED_FIXTURES

from razn.cli import main
from razn.digest import file_sha256
from razn.errors import ConfigError
from razn.models.backends import check_backend, openvino_predictor
from razn.outputs import layout
from razn.run_dir import RunDirectory

openvino = pytest.importorskip("openvino", reason="openvino not installed (razn[openvino])")

AGREEMENT = 0.999
"""Share of label pixels that must equal eager torch's (fp32 either way)."""


def segment(run, slide, out, *extra):
    args = ["segment", str(slide), "--run", str(run), "--out", str(out), "--quiet", *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return np.asarray(zarr.open_array(str(out / slide.stem / layout.LABELS), mode="r"))


def slides(tiny_run):
    yield tiny_run / "data" / "slides" / "synth_002.tiff"
    real = SHARED_FIXTURES / "slides" / "CMU-1-Small-Region.svs"
    if real.is_file():
        yield real


@pytest.mark.parametrize("mode", ["cip", "razn"])
def test_openvino_labels_equal_eager_torch_on_synthetic_and_real_slides(tiny_run, tmp_path, mode):
    for slide in slides(tiny_run):
        eager = segment(tiny_run / "run", slide, tmp_path / "torch", "--mode", mode)
        compiled = segment(
            tiny_run / "run", slide, tmp_path / "ov", "--mode", mode, "--backend", "openvino"
        )
        assert eager.shape == compiled.shape
        assert (eager == compiled).mean() >= AGREEMENT, slide.name


def test_the_graph_is_derived_from_the_weights_and_reused(tiny_run):
    run = RunDirectory.open(tiny_run / "run")
    weights = run.segmenter_path(2)
    model = run.load_segmenter(2)[0]
    predict = openvino_predictor(model, weights, run.config.levels.patch_size, batch_size=4)
    graphs = sorted(weights.parent.glob(f"{weights.stem}.*.xml"))
    assert [g.name for g in graphs] == [f"level_2.{file_sha256(weights)[:16]}.p64.xml"]
    made = graphs[0].stat().st_mtime_ns
    patches = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    probs = predict(patches)
    assert probs.shape == (5, 2, 64, 64) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with torch.inference_mode():
        reference = torch.softmax(model(torch.from_numpy(patches).permute(0, 3, 1, 2)), 1)
    # fp32 both ways; OpenVINO reorders sums (and may use Winograd convolutions)
    np.testing.assert_allclose(probs, reference.numpy(), atol=2e-3)
    openvino_predictor(model, weights, 64, batch_size=4)  # again: the saved graph is reused
    assert graphs[0].stat().st_mtime_ns == made
    assert predict(patches[:0]).shape == (0, 2, 64, 64)


def test_backend_errors_are_one_line(monkeypatch, tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="unknown backend 'tpu'"):
        check_backend("tpu", torch.device("cpu"))
    with pytest.raises(ConfigError, match="runs on the CPU; the device is cuda"):
        check_backend("openvino", torch.device("cuda"))
    monkeypatch.setitem(sys.modules, "openvino", None)
    slide = tiny_run / "data" / "slides" / "synth_002.tiff"
    args = ["segment", str(slide), "--run", str(tiny_run / "run"), "--out", str(tmp_path)]
    # a batch size of its own, so no engine built by an earlier test is reused
    result = CliRunner().invoke(main, [*args, "--backend", "openvino", "--batch-size", "3"])
    assert result.exit_code != 0
    assert "pip install 'razn[openvino]'" in result.output
