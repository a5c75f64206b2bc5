"""Supervised training of the per-level segmentation networks f_0 … f_m.

Each level ``i`` gets its own network, trained from scratch on patches of
``levels.patch_size`` pixels read at downsample ``d_i`` (:mod:`razn.data.patches`)
with cross-entropy + soft Dice (:mod:`razn.train.losses`). Every ``val_every``
steps, and after the last, the network is scored on a fixed validation set and
checkpointed; the weights with the best mean Dice become
``RUN/segmenters/level_i.safetensors``. Levels already finished are skipped and an
interrupted level resumes at its last checkpoint, drawing the same batches and
learning rates it would have drawn uninterrupted (see :mod:`razn.data.patches`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from razn.data.patches import PatchBatches, PatchSpec, SlideRecord, make_loader, validation_set
from razn.models import Segmenter, create_segmenter, save_segmenter, select_device
from razn.run_dir import RunDirectory
from razn.train.losses import DiceCounter, segmentation_loss
from razn.train.setup import SlideRecords, load_slide_records
from razn.train.state import MetricsLog, TrainState, restore_checkpoint, save_checkpoint
from razn.training_config import SegTrainConfig


@dataclass(frozen=True)
class LevelResult:
    """The outcome of training one level.

    Attributes:
        level, downsample: which network.
        step: steps done; ``complete`` when it reached ``seg_train.steps``.
        best_step: the step whose weights were kept (best mean validation Dice).
        val_dice: validation Dice per class at ``best_step``.
        seconds: wall time spent in this call.
        trained_earlier: the level was already finished; nothing was done.
    """

    level: int
    downsample: float
    step: int
    complete: bool
    best_step: int
    val_dice: tuple[float, ...]
    seconds: float
    trained_earlier: bool = False

    @property
    def mean_dice(self) -> float:
        return float(np.mean(self.val_dice)) if self.val_dice else float("nan")

    def dice_text(self, class_names: Sequence[str]) -> str:
        """``tumour 0.701, background 0.934; mean 0.818``: the validation Dice, named."""
        return format_dice(class_names, self.val_dice)


def format_dice(class_names: Sequence[str], dice: Sequence[float]) -> str:
    """Dice per class, named and rounded, then their mean (``background 0.934, tumour
    0.701; mean 0.818``)."""
    if not dice:
        return "no validation"
    named = ", ".join(f"{n} {d:.3f}" for n, d in zip(class_names, dice, strict=True))
    return f"{named}; mean {float(np.mean(dice)):.3f}"


def train_segmenters(
    run: RunDirectory, *, levels: Sequence[int] | None = None, progress: bool = True
) -> list[LevelResult]:
    """Train f_i for every level (or the given ``levels``), one after another."""
    return list(iter_train_segmenters(run, levels=levels, progress=progress))


def iter_train_segmenters(
    run: RunDirectory, *, levels: Sequence[int] | None = None, progress: bool = True
) -> Iterator[LevelResult]:
    """:func:`train_segmenters`, each level's result as soon as it is trained."""
    chosen = range(run.num_levels) if levels is None else levels
    pending = [level for level in chosen if not run.is_trained(level)]
    records = load_slide_records(run.config) if pending else None  # slides are read once
    for level in chosen:
        yield train_level(run, level, records=records, progress=progress)


def train_level(
    run: RunDirectory,
    level: int,
    *,
    records: SlideRecords | None = None,
    stop_at: int | None = None,
    progress: bool = True,
) -> LevelResult:
    """Train (or finish, or skip) f_``level``; stop early after step ``stop_at`` if given."""
    if run.is_trained(level):
        return finished_result(run, level)
    started = time.perf_counter()
    config, train = run.config, run.config.seg_train
    records = records or load_slide_records(config)
    device = select_device(train.device)
    if train.torch_threads:
        torch.set_num_threads(train.torch_threads)
    state = new_state(run, level, device)
    restore_checkpoint(run, level, state)
    log = MetricsLog(run.metrics_path(level), config.data.class_names)
    log.start(state.step)
    stop = train.steps if stop_at is None else min(stop_at, train.steps)
    val = validation_set(
        records.val, config.levels.downsamples[level], config.levels.patch_size,
        train.val_patches, (config.seed, level, 1), config.levels.margin(level),
    )  # fmt: skip
    batches = level_batches(run, level, records.train)
    bar = tqdm(total=train.steps, initial=state.step, desc=_label(run, level), disable=not progress)
    try:
        while state.step < stop:
            losses, counter = run_epoch(state, batches, train, stop, device, bar)
            if state.step % train.val_every == 0 or state.step == train.steps:
                log.append(state.step, "train", float(np.mean(losses)), counter.dice())
                validate_and_log(state, val, train, log, device)
            save_checkpoint(run, level, state)
    finally:
        bar.close()
        batches.reader.close()
    if state.step >= train.steps:
        finish_level(run, level, state)
    return _result(run, level, state, time.perf_counter() - started)


def new_state(run: RunDirectory, level: int, device: torch.device) -> TrainState:
    """A freshly initialised network and optimizer, seeded by ``(run seed, level)``."""
    config = run.config
    torch.manual_seed(_seed(config.seed, level))
    model = create_segmenter(config.model, config.data.num_classes).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.seg_train.lr, weight_decay=config.seg_train.weight_decay
    )
    return TrainState(model, optimizer)


def level_batches(run: RunDirectory, level: int, records: Sequence[SlideRecord]) -> PatchBatches:
    """The training batch stream of ``level`` (random stream keyed by ``(seed, level, 0)``)."""
    config, train = run.config, run.config.seg_train
    spec = PatchSpec(
        config.levels.downsamples[level],
        config.levels.patch_size,
        balance=train.balance,
        augment=train.augment,
        colour_jitter=train.colour_jitter,
        margin=config.levels.margin(level),
    )
    return PatchBatches(records, spec, train.batch_size, (config.seed, level, 0))


def run_epoch(
    state: TrainState,
    batches: PatchBatches,
    train: SegTrainConfig,
    stop: int,
    device: torch.device,
    bar: tqdm,
) -> tuple[list[float], DiceCounter]:
    """Steps from ``state.step`` to the next validation (or ``stop``), one batch each.

    An epoch is the block of ``val_every`` steps between validations; its batches
    are numbered from 0, so a run resumed inside an epoch continues its numbering.
    """
    epoch, offset = divmod(state.step, train.val_every)
    end = min((epoch + 1) * train.val_every, stop)
    batches.set_window(epoch, offset, end - epoch * train.val_every)
    losses, counter = [], DiceCounter(state.model.num_classes)
    state.model.train()
    for images, labels in make_loader(batches, train.num_workers):
        set_learning_rate(state.optimizer, learning_rate(train, state.step))
        logits = state.model(images.to(device))
        labels = labels.to(device).long()
        loss = segmentation_loss(logits, labels, train.dice_weight)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.step += 1
        losses.append(float(loss.detach()))
        counter.update(logits.detach().argmax(1), labels)
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    return losses, counter


def learning_rate(train: SegTrainConfig, step: int) -> float:
    """The learning rate of step ``step`` (0-based): constant, or cosine to ``min_lr_ratio``."""
    if train.lr_schedule == "constant" or train.steps <= 1:
        return train.lr
    progress = step / (train.steps - 1)
    low = train.lr * train.min_lr_ratio
    return low + (train.lr - low) * 0.5 * (1 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@torch.inference_mode()
def evaluate(
    model: Segmenter,
    images: np.ndarray,
    labels: np.ndarray,
    dice_weight: float,
    device: torch.device,
    batch_size: int = 16,
) -> tuple[float, np.ndarray]:
    """Mean loss and pooled Dice per class of ``model`` on ``(N, P, P, 3)`` patches."""
    model.eval()
    counter, total, count = DiceCounter(model.num_classes), 0.0, 0
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).permute(0, 3, 1, 2).to(device)
        y = torch.from_numpy(labels[start : start + batch_size]).to(device).long()
        logits = model(x)
        total += float(segmentation_loss(logits, y, dice_weight)) * len(x)
        count += len(x)
        counter.update(logits.argmax(1), y)
    return total / max(count, 1), counter.dice()


def validate_and_log(
    state: TrainState,
    val: tuple[np.ndarray, np.ndarray],
    train: SegTrainConfig,
    log: MetricsLog,
    device: torch.device,
) -> None:
    """Score the current weights on the validation set, log them, keep them if best."""
    loss, dice = evaluate(state.model, *val, train.dice_weight, device, 2 * train.batch_size)
    log.append(state.step, "val", loss, dice)
    state.offer(dice)
    state.model.train()


def finish_level(run: RunDirectory, level: int, state: TrainState) -> None:
    """Write the best weights as ``RUN/segmenters/level_i.safetensors`` and record them."""
    config = run.config
    names = config.data.class_names
    extra = {
        "level": level,
        "downsample": config.levels.downsamples[level],
        "patch_size": config.levels.patch_size,
        "class_names": list(names),
        "steps": state.step,
        "best_step": state.best_step,
        "val_dice": dict(zip(names, state.best_dice, strict=True)),
        "val_mean_dice": state.best_mean_dice,
    }
    save_segmenter(state.best_model(config.model), config.model, run.segmenter_path(level), extra)
    run.record_segmenter(level)


def finished_result(run: RunDirectory, level: int) -> LevelResult:
    """The :class:`LevelResult` of a level finished earlier, from its file's metadata."""
    _, extra = run.load_segmenter(level)
    names = run.config.data.class_names
    return LevelResult(
        level,
        run.config.levels.downsamples[level],
        int(extra["steps"]),
        True,
        int(extra["best_step"]),
        tuple(float(extra["val_dice"][n]) for n in names),
        0.0,
        trained_earlier=True,
    )


def _result(run: RunDirectory, level: int, state: TrainState, seconds: float) -> LevelResult:
    return LevelResult(
        level,
        run.config.levels.downsamples[level],
        state.step,
        state.step >= run.config.seg_train.steps,
        state.best_step,
        tuple(state.best_dice),
        seconds,
    )


def _label(run: RunDirectory, level: int) -> str:
    return f"f_{level} (d={run.config.levels.downsamples[level]:g})"


def _seed(seed: int, level: int) -> int:
    """A 32-bit torch seed per ``(run seed, level)``: levels start from unrelated weights."""
    return int(np.random.SeedSequence([seed, level]).generate_state(1, dtype=np.uint32)[0])
