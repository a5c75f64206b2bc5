"""Network weights on disk as safetensors: written atomically, read without unpickling.

Every razn weight file carries string metadata with a ``format`` tag and whatever
is needed to rebuild the network; :func:`read_metadata` refuses files that are not
valid safetensors or carry another format, before any tensor is loaded.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from razn.errors import CheckpointError


def save_module(module: nn.Module, path: str | Path, metadata: dict[str, str]) -> Path:
    """Write ``module``'s weights and ``metadata`` to ``path`` via a temporary file."""
    from safetensors.torch import save_model

    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    # save_model also handles tensors shared between submodules (SB3 shares extractors).
    save_model(module, str(partial), metadata=metadata)
    partial.replace(path)
    return path


def read_metadata(path: str | Path, expected_format: str, what: str) -> dict[str, str]:
    """The metadata of a safetensors file of format ``expected_format`` (``what`` names it)."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found", path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"not a valid safetensors {what} ({exc})", path) from None
    if metadata.get("format") != expected_format:
        raise CheckpointError(
            f"{what} format {metadata.get('format')!r} is not {expected_format!r}; razn loads "
            "only files it wrote in this format (retrain with this version)",
            path,
        )
    return metadata


def load_module(module: nn.Module, path: str | Path, what: str) -> None:
    """Load the weights at ``path`` into ``module``; every tensor must match (strict)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        load_model(module, str(path), strict=True)
    except (SafetensorError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{what} does not match its architecture: {exc}", path) from None
