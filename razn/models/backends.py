"""Inference backends for the segmenters: eager torch, or a graph compiled by OpenVINO.

The stored format stays the run's safetensors. The OpenVINO graph is derived from them:
converted from the loaded network once and saved beside its weights as
``level_<i>.<sha256[:16]>.xml``/``.bin``, where the digest is the safetensors file's
(the run verifies that digest when it loads the weights). Changed weights get a new
file name, so a stale graph is never used. Where the run folder cannot be written, the
graph goes to a temporary folder for this process.

Every backend is a :data:`Predictor`: uint8 patches ``(N, H, W, 3)`` to float32 class
probabilities ``(N, K, H, W)``, batched, softmax in fp32 — what the engine calls.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from razn.digest import file_sha256
from razn.errors import ConfigError, RaznError
from razn.models.factory import Segmenter
from razn.models.inference import predict_probs

Predictor = Callable[[np.ndarray], np.ndarray]
"""uint8 ``(N, H, W, 3)`` patches → float32 ``(N, K, H, W)`` class probabilities."""

BACKENDS = ("torch", "openvino")
"""``torch``: eager PyTorch on the run's device. ``openvino``: the CPU through OpenVINO
(``pip install 'razn[openvino]'``), fp32 unless ``precision`` is ``bf16``."""


def check_backend(backend: str, device: torch.device) -> None:
    """Refuse an unknown backend, or OpenVINO asked for on a GPU."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "openvino" and device.type != "cpu":
        raise ConfigError(f"backend openvino runs on the CPU; the device is {device}")


def torch_predictor(
    model: Segmenter, batch_size: int, autocast: torch.dtype | None = None
) -> Predictor:
    """Eager torch: :func:`razn.models.inference.predict_probs`."""
    return functools.partial(predict_probs, model, batch_size=batch_size, autocast=autocast)


def openvino_predictor(
    model: Segmenter,
    weights: Path,
    patch_size: int,
    batch_size: int,
    precision: str = "fp32",
    threads: int | None = None,
) -> Predictor:
    """An OpenVINO-compiled copy of ``model`` (whose weights are the file ``weights``)."""
    openvino = _import_openvino()
    graph = openvino_graph(model, weights, patch_size)
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
    }
    compiled = openvino.Core().compile_model(str(graph), "CPU", config)

    def predict(patches: np.ndarray) -> np.ndarray:
        if not len(patches):
            return np.zeros((0, model.num_classes, *patches.shape[1:3]), np.float32)
        outputs = []
        for start in range(0, len(patches), batch_size):
            batch = np.ascontiguousarray(
                patches[start : start + batch_size].transpose(0, 3, 1, 2), np.float32
            )
            logits = torch.from_numpy(np.asarray(compiled(batch)[0], np.float32))
            outputs.append(torch.softmax(logits, dim=1).numpy())
        return np.concatenate(outputs)

    return predict


def openvino_graph(model: Segmenter, weights: Path, patch_size: int) -> Path:
    """The OpenVINO IR of ``model`` derived from ``weights``: reused when it exists, else
    converted (batch size left dynamic) and saved atomically."""
    openvino = _import_openvino()
    name = f"{weights.stem}.{file_sha256(weights)[:16]}.p{patch_size}"
    for folder in (weights.parent, _scratch()):
        xml = folder / f"{name}.xml"
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            return xml
    example = torch.zeros(1, 3, patch_size, patch_size)
    with warnings.catch_warnings():  # the tracer's notes on the network's Python branches
        warnings.simplefilter("ignore")
        converted = openvino.convert_model(
            model.cpu().eval(), example_input=example, input=[(-1, 3, patch_size, patch_size)]
        )
    for folder in (weights.parent, _scratch()):
        try:
            partial = Path(tempfile.mkdtemp(prefix=".ov-", dir=folder))
            openvino.save_model(converted, str(partial / f"{name}.xml"))
            for suffix in (".bin", ".xml"):  # the .xml last: it marks the pair complete
                (partial / f"{name}{suffix}").replace(folder / f"{name}{suffix}")
            partial.rmdir()
            return folder / f"{name}.xml"
        except OSError:
            continue  # a read-only run folder: the scratch folder instead
    raise RaznError(f"cannot write the OpenVINO graph of {weights.name} anywhere", weights)


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="razn-openvino-"))


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise ConfigError(
            "backend openvino needs the openvino package: pip install 'razn[openvino]'"
        ) from None
    return openvino
