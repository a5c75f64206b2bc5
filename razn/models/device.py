"""Where the networks run and in what precision, and how patches get there.

* ``select_device("auto")`` is CUDA when torch sees a GPU, else the CPU; a named device
  that does not exist is a :class:`~razn.errors.ConfigError`, not a late torch error.
* Mixed precision is for CUDA only: ``auto`` is bf16 where the GPU supports it (same
  range as fp32, no overflow in the logits), else fp16. On the CPU every precision runs
  fp32, because CPU autocast is slower than fp32 for these small convolutions.
* Patches go to a GPU from pinned (page-locked) host memory with a non-blocking copy,
  so the transfer runs on the copy engine while the host carries on; the patch reader
  allocates its batches pinned already (:func:`empty_patches`).
"""

from __future__ import annotations

import numpy as np
import torch

from razn.errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def select_device(requested: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; otherwise the named device.

    Raises:
        ConfigError: an unknown device name, or CUDA asked for where torch has none.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ConfigError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {requested!r} asked for, but torch finds no CUDA GPU; use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {requested!r} asked for, but torch sees only "
                f"{torch.cuda.device_count()} GPU(s)"
            )
    elif device.type != "cpu":
        raise ConfigError(f"unsupported device {requested!r}; use auto, cpu, cuda or cuda:N")
    return device


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``: None means plain fp32.

    Raises:
        ConfigError: an unknown precision, or bf16 asked for on a GPU without it.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    bf16 = torch.cuda.is_bf16_supported()
    if precision == "bf16" and not bf16:
        raise ConfigError("precision bf16 asked for, but this GPU does not support it; use fp16")
    return torch.bfloat16 if bf16 else torch.float16


def empty_patches(count: int, size: int, pinned: bool = False) -> np.ndarray:
    """An uninitialised ``(count, size, size, 3)`` uint8 batch, in pinned memory if asked.

    The array is a view of a torch tensor and keeps it alive; pinned blocks come from
    torch's caching host allocator, so a batch per read costs no new page locking.
    """
    if not pinned:
        return np.empty((count, size, size, 3), np.uint8)
    return torch.empty((count, size, size, 3), dtype=torch.uint8, pin_memory=True).numpy()


def to_device(patches: np.ndarray, device: torch.device) -> torch.Tensor:
    """``patches`` as a uint8 tensor on ``device``.

    On the CPU a copy (the input may be read-only or reused by the caller). On CUDA the
    host memory is used as it is when pinned, else pinned first, and copied
    non-blocking; the caller's later ``.cpu()`` of the results waits for it.
    """
    if device.type != "cuda":
        return torch.tensor(patches)
    host = torch.from_numpy(np.ascontiguousarray(patches)) if patches.flags.writeable else None
    if host is None:
        host = torch.tensor(patches)
    if not host.is_pinned():
        host = host.pin_memory()
    return host.to(device, non_blocking=True)
