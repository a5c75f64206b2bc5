"""Safe checkpoints: weights in safetensors, architecture in its metadata, nothing unpickled.

A checkpoint is one ``.safetensors`` file whose string metadata holds the razn
format version, the model config (JSON) and the number of classes, so a file
alone rebuilds its network. Loading never runs code from the file; a file that is
not valid safetensors, or whose tensors do not fit the declared architecture,
is refused with a :class:`~razn.errors.RaznError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from razn.config import from_mapping, to_dict
from razn.errors import CheckpointError
from razn.models.factory import Segmenter, SegmenterConfig, create_segmenter

CHECKPOINT_FORMAT = "razn-segmenter/1"


def save_segmenter(
    model: Segmenter, config: SegmenterConfig, path: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights and architecture to ``path`` (safetensors), atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "model": json.dumps(to_dict(config)),
        "num_classes": str(model.num_classes),
        "extra": json.dumps(extra or {}),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    partial.replace(path)
    return path


def load_segmenter(path: str | Path, device: str = "cpu") -> tuple[Segmenter, dict[str, Any]]:
    """Rebuild the network saved at ``path``; returns it (in eval mode) and its ``extra`` metadata."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"not a valid safetensors checkpoint ({exc})", path) from None
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint format {metadata.get('format')!r} is not {CHECKPOINT_FORMAT!r}; "
            "retrain with this version of razn",
            path,
        )
    try:
        config = from_mapping(SegmenterConfig, json.loads(metadata["model"]), source=str(path))
        model = create_segmenter(config, int(metadata["num_classes"]))
        model.load_state_dict(tensors, strict=True)
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint does not match its architecture: {exc}", path) from None
    return model.to(device).eval(), extra
