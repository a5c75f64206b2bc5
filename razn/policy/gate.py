"""The zoom gate: P(g_i zooms) from the patch alone, so confident zooms skip f_i.

A gate is trained per level by supervised distillation of the trained policy g_i:
its inputs are the observation's downsized image (``(3, S, S)`` uint8) and the
patch's tissue share, its target is g_i's own decision on the full observation. Its
threshold is calibrated on held-out slides (:func:`calibrate_threshold`): the gate
zooms only where, there, at least ``precision`` of its zooms were g_i's too. Where it
does not zoom, f_i runs and g_i decides as before, so a gate changes decisions only
on the (calibrated) few nodes where it and g_i disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from razn.config import from_mapping, to_dict
from razn.errors import CheckpointError
from razn.policy.config import GateConfig
from razn.policy.store import verify_digest
from razn.safe_weights import load_module, read_metadata, save_module

GATE_FORMAT = "razn-gate/1"
GATES_FILE = "gates.json"
"""The file in a policy folder listing its gates and their calibration."""
GATES_FORMAT = "razn-gates/1"


class GateNet(nn.Module):
    """Logit of P(g_i zooms) from a downsized patch ``(N, 3, S, S)`` in [0, 1] and its
    tissue share ``(N,)`` in [0, 1]."""

    def __init__(self, cnn_channels: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for out_channels in cnn_channels:
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), nn.ReLU()]
            in_channels = out_channels
        self.cnn = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(in_channels + 1, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, image: torch.Tensor, tissue_share: torch.Tensor) -> torch.Tensor:
        features = self.cnn(image)
        return self.head(torch.cat([features, tissue_share[:, None]], dim=1))[:, 0]


@dataclass
class Gate:
    """A trained gate of one level and its calibrated threshold (``None``: never zooms)."""

    net: GateNet
    threshold: float | None

    def probability(self, images: np.ndarray, tissue_share: np.ndarray) -> np.ndarray:
        """P(g_i zooms) for ``images`` ``(N, 3, S, S)`` uint8 and ``tissue_share`` ``(N,)``."""
        return gate_probability(self.net, images, tissue_share)

    def decide(self, images: np.ndarray, tissue_share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(zoom without f_i: bool (N,), P(g_i zooms): float32 (N,))``."""
        probability = self.probability(images, tissue_share)
        if self.threshold is None:
            return np.zeros(len(probability), bool), probability
        return probability >= self.threshold, probability


def gate_probability(
    net: GateNet, images: np.ndarray, tissue_share: np.ndarray, batch: int = 512
) -> np.ndarray:
    """P(g_i zooms) of ``net`` for uint8 ``images`` ``(N, 3, S, S)``; float32 ``(N,)``."""
    device = next(net.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            image = torch.as_tensor(images[start : start + batch], device=device).float() / 255.0
            tissue = torch.as_tensor(
                np.asarray(tissue_share[start : start + batch], np.float32), device=device
            )
            out.append(torch.sigmoid(net(image, tissue)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def train_gate(
    images: np.ndarray,
    tissue_share: np.ndarray,
    zoomed: np.ndarray,
    config: GateConfig,
    seed: int,
) -> GateNet:
    """Fit a :class:`GateNet` to g_i's decisions ``zoomed`` (bool ``(N,)``) on ``images``
    (uint8 ``(N, 3, S, S)``) with random flips and 90° rotations (a patch's decision does
    not depend on its orientation)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = GateNet(tuple(config.cnn_channels))
    if len(images) == 0:
        return net.eval()
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    image_t = torch.as_tensor(images)
    tissue_t = torch.as_tensor(np.asarray(tissue_share, np.float32))
    target_t = torch.as_tensor(np.asarray(zoomed, np.float32))
    loss_fn = nn.BCEWithLogitsLoss()
    net.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(image_t), generator=generator)
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            image = _augment(image_t[index].float() / 255.0, generator)
            loss = loss_fn(net(image, tissue_t[index]), target_t[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


def _augment(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    turns = int(torch.randint(4, (1,), generator=generator))
    image = torch.rot90(image, turns, dims=(2, 3))
    if bool(torch.randint(2, (1,), generator=generator)):
        image = torch.flip(image, dims=(3,))
    return image


def calibrate_threshold(
    probability: np.ndarray, zoomed: np.ndarray, precision: float, min_threshold: float
) -> float | None:
    """The lowest threshold ``t >= min_threshold`` such that, of the nodes with
    ``probability >= t``, at least ``precision`` have ``zoomed`` true; ``None`` when no
    threshold does (the gate then never zooms).

    Nodes are taken from the most confident down, so the gated set is always a top-k.
    """
    probability = np.asarray(probability, np.float64).ravel()
    zoomed = np.asarray(zoomed, bool).ravel()
    keep = probability >= min_threshold
    probability, zoomed = probability[keep], zoomed[keep]
    if probability.size == 0:
        return None
    order = np.argsort(-probability, kind="stable")
    ranked_p, ranked_z = probability[order], zoomed[order]
    hits = np.cumsum(ranked_z) / np.arange(1, ranked_z.size + 1)
    # only cut between distinct probabilities: a threshold takes all tied nodes or none
    boundary = np.append(ranked_p[1:] < ranked_p[:-1], True)
    good = np.flatnonzero((hits >= precision) & boundary)
    if good.size == 0:
        return None
    return float(ranked_p[good[-1]])


def save_gate(gate: Gate, path: str | Path, config: GateConfig, extra: dict[str, Any]) -> Path:
    """Write ``gate`` to ``path`` as safetensors, atomically, its threshold in the metadata."""
    metadata = {
        "format": GATE_FORMAT,
        "config": json.dumps(to_dict(config)),
        "threshold": json.dumps(gate.threshold),
        "extra": json.dumps(extra),
    }
    return save_module(gate.net, path, metadata)


def load_gate(path: str | Path, device: str = "cpu") -> Gate:
    """Rebuild a gate written by :func:`save_gate` (eval mode)."""
    metadata = read_metadata(path, GATE_FORMAT, "gate")
    try:
        config = from_mapping(GateConfig, json.loads(metadata["config"]), str(path))
        threshold = json.loads(metadata["threshold"])
        if threshold is not None:
            threshold = float(threshold)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"gate metadata is damaged: {exc}", path) from None
    net = GateNet(tuple(config.cnn_channels))
    load_module(net, path, "gate")
    return Gate(net.eval().to(device), threshold)


def gate_path(folder: Path, level: int) -> Path:
    """The file of level ``level``'s gate in a policy folder."""
    return Path(folder) / f"gate_{level}.safetensors"


def read_gates_record(folder: Path) -> dict[str, Any] | None:
    """The folder's ``gates.json``, or None when missing or not of this format."""
    try:
        record = json.loads((Path(folder) / GATES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != GATES_FORMAT:
        return None
    return record


def load_gates(folder: Path, device: str = "cpu") -> dict[int, Gate]:
    """The gates of a policy folder by level; empty when it has none (``gates.json`` absent).

    Every gate file's SHA-256 is checked against ``policies.json`` before it is parsed.
    """
    folder = Path(folder)
    if not (folder / GATES_FILE).exists():
        return {}
    record = read_gates_record(folder)
    if record is None:
        raise CheckpointError(f"{GATES_FILE} is damaged or of another format", folder / GATES_FILE)
    gates = {}
    for entry in record.get("levels", []):
        path = gate_path(folder, int(entry["level"]))
        verify_digest(path)
        gates[int(entry["level"])] = load_gate(path, device)
    return gates


def gates_present(folder: Path) -> bool:
    """Whether ``folder`` has a gate record (whatever its state)."""
    return (Path(folder) / GATES_FILE).exists()


def remove_gates(folder: Path) -> None:
    """Delete a folder's gates (record first, so a half-removed set is never used)."""
    folder = Path(folder)
    (folder / GATES_FILE).unlink(missing_ok=True)
    for path in folder.glob("gate_*.safetensors"):
        path.unlink()
