"""The default segmenter on the CPU under several inference backends (``scripts/bench_cpu_backends.py``).

Each backend runs the same network (random weights: speed does not depend on them) over the
same batches of patches; the figures are wall seconds per batch after warm-up and the share
of pixels whose class agrees with eager torch (fp32). A backend whose package is missing is
reported as unavailable, not an error: ONNX Runtime and OpenVINO are optional.

``eager`` feeds a contiguous NCHW batch, the way most code calls a network. ``engine`` is
what razn's engine actually runs (:func:`razn.models.predict_probs`): the NHWC patches
through a permuted view, which torch's CPU convolutions take as channels-last input, so
the engine already has most of channels-last's gain without converting the weights. A
backend is worth adopting only by its speed against ``engine``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from razn.models.factory import Segmenter

Runner = Callable[[np.ndarray], np.ndarray]
"""uint8 ``(N, H, W, 3)`` patches → float32 ``(N, K, H, W)`` logits."""

BACKENDS = ("eager", "engine", "channels_last", "compile", "onnxruntime", "openvino")


@dataclass
class BackendTiming:
    """One backend's figures on one batch shape."""

    backend: str
    seconds_per_batch: float | None
    """Median over the timed repeats; None when the backend is unavailable."""
    agreement: float | None
    """Share of pixels whose arg-max class equals eager torch's."""
    note: str = ""

    def speedup(self, eager: BackendTiming) -> float | None:
        if self.seconds_per_batch is None or eager.seconds_per_batch is None:
            return None
        return eager.seconds_per_batch / self.seconds_per_batch


def _as_input(patches: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(patches).permute(0, 3, 1, 2).contiguous()


def eager_runner(model: Segmenter) -> Runner:
    def run(patches: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(_as_input(patches)).float().numpy()

    return run


def engine_runner(model: Segmenter) -> Runner:
    from razn.models import predict_probs

    def run(patches: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return predict_probs(model, patches, batch_size=len(patches))

    return run


def channels_last_runner(model: Segmenter) -> Runner:
    model = model.to(memory_format=torch.channels_last)

    def run(patches: np.ndarray) -> np.ndarray:
        batch = _as_input(patches).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return model(batch).float().contiguous().numpy()

    return run


def compile_runner(model: Segmenter) -> Runner:
    compiled = torch.compile(model)

    def run(patches: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return compiled(_as_input(patches)).float().numpy()

    return run


def onnx_path(model: Segmenter, example: np.ndarray, folder: Path) -> Path:
    """Export ``model`` to ONNX (a graph derived from the weights, batch size dynamic)."""
    path = folder / "segmenter.onnx"
    torch.onnx.export(
        model,
        (_as_input(example).float(),),
        str(path),
        input_names=["patches"],
        output_names=["logits"],
        dynamic_axes={"patches": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    return path


def onnxruntime_runner(model: Segmenter, example: np.ndarray, folder: Path) -> Runner:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(
        str(onnx_path(model, example, folder)), options, providers=["CPUExecutionProvider"]
    )

    def run(patches: np.ndarray) -> np.ndarray:
        return session.run(None, {"patches": _as_input(patches).float().numpy()})[0]

    return run


def openvino_runner(model: Segmenter, example: np.ndarray, folder: Path) -> Runner:
    import openvino

    core = openvino.Core()
    config = {"INFERENCE_NUM_THREADS": torch.get_num_threads()}
    compiled = core.compile_model(str(onnx_path(model, example, folder)), "CPU", config)

    def run(patches: np.ndarray) -> np.ndarray:
        return np.asarray(compiled(_as_input(patches).float().numpy())[0])

    return run


def make_runner(backend: str, model: Segmenter, example: np.ndarray, folder: Path) -> Runner:
    if backend == "eager":
        return eager_runner(model)
    if backend == "engine":
        return engine_runner(model)
    if backend == "channels_last":
        return channels_last_runner(model)
    if backend == "compile":
        return compile_runner(model)
    if backend == "onnxruntime":
        return onnxruntime_runner(model, example, folder)
    if backend == "openvino":
        return openvino_runner(model, example, folder)
    raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")


def time_backends(
    model_factory: Callable[[], Segmenter],
    patches: np.ndarray,
    folder: Path,
    backends: tuple[str, ...] = BACKENDS,
    repeats: int = 5,
) -> list[BackendTiming]:
    """Time every backend on ``patches`` (one batch), each on a fresh copy of the network."""
    reference = eager_runner(model_factory())(patches).argmax(axis=1)
    timings = []
    for backend in backends:
        try:
            run = make_runner(backend, model_factory(), patches, folder)
            labels = run(patches).argmax(axis=1)  # warm-up (compilation happens here)
        except (ImportError, RuntimeError, OSError) as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            timings.append(BackendTiming(backend, None, None, f"unavailable ({reason})"))
            continue
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(patches)
            seconds.append(time.perf_counter() - start)
        agreement = float((labels == reference).mean())
        timings.append(BackendTiming(backend, float(np.median(seconds)), agreement))
    return timings


def format_table(timings: list[BackendTiming], batch_shape: tuple[int, ...]) -> str:
    """A Markdown table: each backend's seconds, its speed against ``eager`` and, when the
    ``engine`` row was measured, against the engine's own path."""
    eager = next(t for t in timings if t.backend == "eager")
    engine = next((t for t in timings if t.backend == "engine"), None)
    head = (
        f"batch {'×'.join(map(str, batch_shape))}, {torch.get_num_threads()} torch threads\n\n"
        "| backend | s per batch | × eager | × engine | labels equal to eager |\n"
        "|---|---|---|---|---|"
    )
    rows = []
    for t in timings:
        if t.seconds_per_batch is None:
            rows.append(f"| {t.backend} | — | — | — | {t.note} |")
            continue
        against_engine = None if engine is None else t.speedup(engine)
        rows.append(
            f"| {t.backend} | {t.seconds_per_batch:.3f} | {t.speedup(eager):.2f} "
            f"| {'—' if against_engine is None else f'{against_engine:.2f}'} "
            f"| {100 * (t.agreement or 0.0):.3f} % |"
        )
    return "\n".join([head, *rows])
