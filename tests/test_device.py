"""The CUDA path: device choice, precision, pinned batches, transfers. The CPU tests run the
code paths a CPU can; the ``gpu`` tests run the rest on a real GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from test_engine import ColourSegmenter, blob_image, config_for, full_tissue

from razn.engine import EngineConfig, FixedLevel, ZoomEngine
from razn.engine.reader import PatchReader
from razn.engine.spec import EngineSpec
from razn.errors import ConfigError
from razn.models import predict_probs
from razn.models.device import autocast_dtype, empty_patches, select_device, to_device
from razn.slide import ArraySlide, plan_levels

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
gpu = pytest.mark.gpu


def test_auto_and_cpu_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu")
    assert select_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")


def test_bad_and_missing_devices_are_config_errors(monkeypatch):
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        select_device("gpu0")
    with pytest.raises(ConfigError, match="unsupported device 'meta'"):
        select_device("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="torch finds no CUDA GPU; use --device cpu"):
        select_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="sees only 1 GPU"):
        select_device("cuda:1")


@no_cuda
def test_cuda_asked_for_fails_before_the_run_is_opened(tmp_path):
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        EngineSpec(tmp_path / "no_run", device="cuda").build()


def test_mixed_precision_only_on_cuda(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for precision in ("auto", "bf16", "fp16", "fp32"):
        assert autocast_dtype(cpu, precision) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert autocast_dtype(cuda, "auto") is torch.bfloat16
    assert autocast_dtype(cuda, "bf16") is torch.bfloat16
    assert autocast_dtype(cuda, "fp16") is torch.float16
    assert autocast_dtype(cuda, "fp32") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert autocast_dtype(cuda, "auto") is torch.float16
    with pytest.raises(ConfigError, match="does not support it; use fp16"):
        autocast_dtype(cuda, "bf16")
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        autocast_dtype(cpu, "fp8")
    with pytest.raises(ConfigError, match=r"engine\.precision must be one of"):
        EngineConfig(precision="half")


def test_cpu_transfer_copies_even_read_only_input():
    patches = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    patches.setflags(write=False)
    tensor = to_device(patches, torch.device("cpu"))
    tensor[0, 0, 0, 0] = 99
    assert tensor.dtype == torch.uint8 and patches[0, 0, 0, 0] == 0
    assert empty_patches(3, 8).shape == (3, 8, 8, 3)


def test_precision_setting_leaves_cpu_results_exact(tmp_path):
    image = blob_image(203, 150)
    slide = ArraySlide([image])
    models = [ColourSegmenter() for _ in range(3)]
    outputs = []
    for precision in ("fp32", "bf16", "fp16"):
        engine = ZoomEngine(models, FixedLevel(2), config_for(), EngineConfig(precision=precision))
        assert engine.autocast is None and engine.device.type == "cpu"
        path = tmp_path / f"{precision}.zarr"
        engine.segment(slide, path, tissue=full_tissue(slide.dimensions))
        outputs.append(zarr.open_array(str(path), mode="r")[:])
    np.testing.assert_array_equal(outputs[0], (image[..., 0] < 128).astype(np.uint8))
    for other in outputs[1:]:
        np.testing.assert_array_equal(other, outputs[0])


def test_reader_reads_ahead_in_order_unpinned_on_cpu():
    image = blob_image(203, 150)
    slide = ArraySlide([image])
    geometry = config_for().levels.geometry()
    nodes = list(geometry.roots((203, 150)))
    reader = PatchReader(slide, geometry, plan_levels(slide, geometry.downsamples), 2, 2)
    try:
        batches = list(reader.batches([nodes[i : i + 3] for i in range(0, len(nodes), 3)]))
    finally:
        reader.close()
    assert [list(b) for b, _ in batches] == [nodes[i : i + 3] for i in range(0, len(nodes), 3)]
    assert all(p.shape == (len(b), 16, 16, 3) for b, p in batches)
    assert not torch.from_numpy(batches[0][1]).is_pinned()


@gpu
def test_gpu_engine_matches_cpu_with_pinned_batches(tmp_path):
    image = blob_image(203, 150)
    slide = ArraySlide([image])
    results = {}
    for device, precision in (("cpu", "fp32"), ("cuda", "auto"), ("cuda", "fp16")):
        models = [ColourSegmenter().to(device) for _ in range(3)]
        engine = ZoomEngine(models, FixedLevel(2), config_for(), EngineConfig(precision=precision))
        path = tmp_path / f"{device}_{precision}.zarr"
        engine.segment(slide, path, tissue=full_tissue(slide.dimensions))
        results[device, precision] = zarr.open_array(str(path), mode="r")[:]
    for key, labels in results.items():
        np.testing.assert_array_equal(labels, results["cpu", "fp32"], err_msg=str(key))


@gpu
def test_gpu_pinned_batches_and_transfer():
    batch = empty_patches(4, 16, pinned=True)
    batch[:] = 7
    assert torch.from_numpy(batch).is_pinned()
    on_gpu = to_device(batch, torch.device("cuda"))
    assert on_gpu.device.type == "cuda" and int(on_gpu.sum()) == 7 * batch.size
    model = ColourSegmenter().cuda()
    probs = predict_probs(model, batch, 2, autocast=autocast_dtype(torch.device("cuda")))
    assert probs.dtype == np.float32 and probs.shape == (4, 2, 16, 16)
    np.testing.assert_array_equal(probs.argmax(1), np.ones((4, 16, 16)))


def test_the_mixed_precision_inference_path_runs_reduced_and_keeps_the_labels():
    """What autocast does to a real razn network, exercised on the CPU (torch's CPU autocast
    runs bf16): the probabilities change, so the reduced path really ran, yet the classes
    stay those of fp32 on all but a sliver of pixels. On CUDA the engine takes this path."""
    from razn.models import create_segmenter
    from razn.models.factory import SegmenterConfig

    torch.manual_seed(0)
    model = create_segmenter(SegmenterConfig(), 3).eval()
    patches = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    exact = predict_probs(model, patches)
    reduced = predict_probs(model, patches, autocast=torch.bfloat16)
    assert reduced.dtype == np.float32 and reduced.shape == exact.shape == (2, 3, 64, 64)
    assert np.abs(reduced - exact).max() > 0  # bf16 arithmetic happened
    np.testing.assert_allclose(reduced.sum(axis=1), 1.0, atol=1e-5)  # softmax in fp32
    agree = (reduced.argmax(axis=1) == exact.argmax(axis=1)).mean()
    assert agree >= 0.99
