"""Train and calibrate the zoom gates of a policy set (:mod:`razn.policy.gate`).

For each level with a policy, the gate learns g_i's decisions over the cached tissue
nodes of the training slides, then its threshold is set on the calibration slides'
nodes that the policies reach (every ancestor zoomed), which are the nodes the engine
will ask it about. Gates are written beside the policies as ``gate_<i>.safetensors``,
their SHA-256 in ``policies.json`` and the calibration figures in ``gates.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from razn.config import from_mapping, to_dict
from razn.errors import RaznError
from razn.observation import TISSUE_STAT
from razn.policy.config import GateConfig
from razn.policy.gate import (
    GATES_FILE,
    GATES_FORMAT,
    Gate,
    calibrate_threshold,
    gate_path,
    gate_probability,
    read_gates_record,
    save_gate,
    train_gate,
)
from razn.policy.store import record_digest, verify_digest
from razn.rewards import reached_nodes


@dataclass(frozen=True)
class GateReport:
    """What one level's gate learned and how it did on the calibration slides."""

    level: int
    train_nodes: int
    train_zoom_share: float
    """Share of the training tissue nodes g_i zooms (the gate's positive class)."""
    calibration_nodes: int
    """Calibration tissue nodes the policies reach at this level."""
    threshold: float | None
    gated: int
    """Calibration nodes the gate zooms without f_i."""
    precision: float
    """Share of those that g_i zooms too."""
    recall: float
    """Share of g_i's zooms (of reached calibration nodes) that the gate takes."""


def fit_gates(
    train_tables: Sequence[Any],
    train_zoom: Mapping[int, np.ndarray],
    calibration_tables: Sequence[Any],
    calibration_zoom: Mapping[int, np.ndarray],
    config: GateConfig,
    rate: int,
    seed: int,
) -> tuple[dict[int, Gate], list[GateReport]]:
    """One calibrated gate per level in ``train_zoom`` (g_i's decisions, bool ``(R, n, n)``,
    over the cached ``train_tables``; ``calibration_zoom`` likewise over ``calibration_tables``)."""
    tissue = [t.observations["stats"][..., TISSUE_STAT] > 0 for t in calibration_tables[:-1]]
    reached = reached_nodes(calibration_zoom, tissue, rate)
    gates: dict[int, Gate] = {}
    reports = []
    for level in sorted(train_zoom):
        images, share, zoomed = _gate_data(train_tables[level], train_zoom[level])
        net = train_gate(images, share, zoomed, config, seed + level)
        c_images, c_share, c_zoomed = _gate_data(
            calibration_tables[level], calibration_zoom[level], reached[level]
        )
        probability = gate_probability(net, c_images, c_share)
        threshold = calibrate_threshold(
            probability, c_zoomed, config.precision, config.min_threshold
        )
        gated = probability >= threshold if threshold is not None else np.zeros(len(c_zoomed), bool)
        gates[level] = Gate(net, threshold)
        reports.append(
            GateReport(
                level=level,
                train_nodes=len(zoomed),
                train_zoom_share=float(zoomed.mean()) if len(zoomed) else 0.0,
                calibration_nodes=len(c_zoomed),
                threshold=threshold,
                gated=int(gated.sum()),
                precision=float(c_zoomed[gated].mean()) if gated.any() else 0.0,
                recall=float(gated[c_zoomed].mean()) if c_zoomed.any() else 0.0,
            )
        )
    return gates, reports


def _gate_data(
    table: Any, zoom: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, tissue shares and g_i's decisions of a level's tissue nodes (within ``mask``)."""
    share = table.observations["stats"][..., TISSUE_STAT]
    keep = share > 0 if mask is None else (share > 0) & mask
    return (
        np.asarray(table.observations["image"][keep]),
        np.asarray(share[keep], np.float32),
        np.asarray(zoom, bool)[keep],
    )


def save_gates(
    folder: Path, gates: Mapping[int, Gate], reports: Sequence[GateReport], config: GateConfig
) -> None:
    """Write each gate and ``gates.json`` (config and calibration) into the policy folder."""
    for level, gate in gates.items():
        path = gate_path(folder, level)
        save_gate(gate, path, config, {"level": level})
        record_digest(path)
    record = {
        "format": GATES_FORMAT,
        "config": to_dict(config),
        "levels": [asdict(report) for report in reports],
    }
    target = Path(folder) / GATES_FILE
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(record, indent=2), encoding="utf-8")
    partial.replace(target)


def gates_exist(folder: Path, config: GateConfig) -> bool:
    """True when ``folder`` holds verified gates trained with ``config``."""
    record = read_gates_record(folder)
    if record is None:
        return False
    try:
        if from_mapping(GateConfig, record["config"], GATES_FILE) != config:
            return False
        for entry in record["levels"]:
            path = gate_path(folder, int(entry["level"]))
            if not path.is_file():
                return False
            verify_digest(path)
    except (RaznError, KeyError, TypeError, ValueError):
        return False
    return True
