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
from razn.safe_weights import load_module, read_metadata, save_module

CHECKPOINT_FORMAT = "razn-segmenter/1"


def save_segmenter(
    model: Segmenter, config: SegmenterConfig, path: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights and architecture to ``path`` (safetensors), atomically."""
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "model": json.dumps(to_dict(config)),
        "num_classes": str(model.num_classes),
        "extra": json.dumps(extra or {}),
    }
    return save_module(model, path, metadata)


def load_segmenter(path: str | Path, device: str = "cpu") -> tuple[Segmenter, dict[str, Any]]:
    """Rebuild the network saved at ``path``; returns it (in eval mode) and its ``extra`` metadata."""
    metadata = read_metadata(path, CHECKPOINT_FORMAT, "checkpoint")
    try:
        config = from_mapping(SegmenterConfig, json.loads(metadata["model"]), source=str(path))
        model = create_segmenter(config, int(metadata["num_classes"]))
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"checkpoint metadata is damaged: {exc}", path) from None
    load_module(model, path, "checkpoint")
    return model.to(device).eval(), extra
