"""What a level's training keeps between steps, and how it is checkpointed and logged.

A checkpoint of level ``i`` is three files in ``RUN/checkpoints`` (see
:mod:`razn.run_dir`), written in this order so that the last one commits the set:

1. ``level_i_last.safetensors``: the current weights, metadata ``step``;
2. ``level_i_best.safetensors``: the best weights so far, metadata ``step`` and Dice;
3. ``level_i_optimizer.pt``: optimizer state, ``step``, ``best_step``, ``best_dice`` —
   tensors and plain types only, loaded with ``torch.load(weights_only=True)``.

Restoring checks that the three agree; a set torn by an interruption while saving
is refused (:class:`~razn.errors.CheckpointError`) rather than silently mixed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from razn.errors import CheckpointError
from razn.models import Segmenter, SegmenterConfig, load_segmenter, save_segmenter
from razn.run_dir import RunDirectory


@dataclass
class TrainState:
    """The mutable state of one level's training.

    Attributes:
        step: optimisation steps done.
        best_step: the step of the best validation so far (-1: none yet).
        best_dice: validation Dice per class at ``best_step``.
        best_weights: a CPU copy of the weights at ``best_step``.
    """

    model: Segmenter
    optimizer: torch.optim.Optimizer
    step: int = 0
    best_step: int = -1
    best_dice: list[float] = field(default_factory=list)
    best_weights: dict[str, torch.Tensor] | None = None

    @property
    def best_mean_dice(self) -> float:
        return float(np.mean(self.best_dice)) if self.best_dice else -1.0

    def offer(self, dice: np.ndarray) -> bool:
        """Keep the current weights if their mean ``dice`` beats the best; True if kept."""
        if self.best_step >= 0 and float(np.mean(dice)) <= self.best_mean_dice:
            return False
        self.best_step, self.best_dice = self.step, [float(d) for d in dice]
        self.best_weights = {
            k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
        }
        return True

    def best_model(self, config: SegmenterConfig) -> Segmenter:
        """A copy of the model holding the best weights (the current ones if none)."""
        from razn.models import create_segmenter

        model = create_segmenter(config, self.model.num_classes)
        model.load_state_dict(self.best_weights or self.model.state_dict())
        return model.eval()


def save_checkpoint(run: RunDirectory, level: int, state: TrainState) -> None:
    """Write the level's checkpoint set (see the module docstring)."""
    config = run.config.model
    save_segmenter(state.model, config, run.checkpoint_path(level, "last"), {"step": state.step})
    if state.best_weights is not None:
        best = state.best_model(config)
        extra = {"step": state.best_step, "dice": state.best_dice}
        save_segmenter(best, config, run.checkpoint_path(level, "best"), extra)
    target = run.checkpoint_path(level, "optimizer")
    payload = {
        "optimizer": state.optimizer.state_dict(),
        "step": state.step,
        "best_step": state.best_step,
        "best_dice": state.best_dice,
    }
    partial = target.with_name(target.name + ".partial")
    torch.save(payload, partial)
    partial.replace(target)


def restore_checkpoint(run: RunDirectory, level: int, state: TrainState) -> bool:
    """Load the level's checkpoint into ``state`` if there is one; True if one was loaded."""
    path = run.checkpoint_path(level, "optimizer")
    if not path.is_file():
        return False
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        step, best_step = int(payload["step"]), int(payload["best_step"])
        best_dice = [float(d) for d in payload["best_dice"]]
    except Exception as exc:  # unpickling errors come in many types; all mean "unreadable"
        raise CheckpointError(f"unreadable optimizer checkpoint ({exc})", path) from None
    device = next(state.model.parameters()).device
    last, extra = load_segmenter(run.checkpoint_path(level, "last"))
    _check_step(extra, step, run.checkpoint_path(level, "last"))
    state.model.load_state_dict(last.state_dict())
    state.model.to(device)
    try:
        state.optimizer.load_state_dict(payload["optimizer"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"optimizer state does not fit the model ({exc})", path) from None
    state.step, state.best_step, state.best_dice = step, best_step, best_dice
    if best_step >= 0:
        best, extra = load_segmenter(run.checkpoint_path(level, "best"))
        _check_step(extra, best_step, run.checkpoint_path(level, "best"))
        state.best_weights = {k: v.clone() for k, v in best.state_dict().items()}
    return True


def _check_step(extra: dict[str, object], expected: int, path: Path) -> None:
    if extra.get("step") != expected:
        raise CheckpointError(
            f"holds step {extra.get('step')} but the optimizer checkpoint says {expected}: "
            "the run was interrupted while saving; delete this level's checkpoints to "
            "restart the level",
            path,
        )


class MetricsLog:
    """The CSV ``step, split, loss, mean_dice, dice_<class>…`` of one level's training."""

    def __init__(self, path: Path, class_names: tuple[str, ...]) -> None:
        self.path = path
        self.header = ["step", "split", "loss", "mean_dice", *(f"dice_{n}" for n in class_names)]

    def start(self, step: int) -> None:
        """Begin at ``step``: keep earlier rows (a resumed run), drop later ones."""
        rows = self._rows() if step > 0 else []
        kept = [row for row in rows if int(row[0]) <= step]
        with self.path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows([self.header, *kept])

    def append(self, step: int, split: str, loss: float, dice: np.ndarray) -> None:
        row = [step, split, f"{loss:.6f}", f"{float(np.mean(dice)):.6f}"]
        row += [f"{d:.6f}" for d in dice]
        with self.path.open("a", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerow(row)

    def _rows(self) -> list[list[str]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        return [row for row in rows[1:] if row and row[0].isdigit()]
