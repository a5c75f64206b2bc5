"""Stable-Baselines3 callbacks: zoom statistics in the log, and a progress bar."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm


class ZoomStatsCallback(BaseCallback):
    """Logs, per rollout, the zoom rate, the oracle's zoom rate (where the reward is
    positive) and how often the two agree (``charts/…`` in the run's progress.csv)."""

    def _on_rollout_start(self) -> None:
        self.zooms = self.oracle = self.agree = self.count = 0

    def _on_step(self) -> bool:
        for action, info in zip(self.locals["actions"], self.locals["infos"], strict=True):
            oracle = info["zoom_reward"] > 0
            self.zooms += int(action)
            self.oracle += int(oracle)
            self.agree += int(bool(action) == oracle)
            self.count += 1
        return True

    def _on_rollout_end(self) -> None:
        n = max(self.count, 1)
        self.logger.record("charts/zoom_rate", self.zooms / n)
        self.logger.record("charts/oracle_zoom_rate", self.oracle / n)
        self.logger.record("charts/oracle_agreement", self.agree / n)


class TqdmCallback(BaseCallback):
    """A tqdm progress bar over environment steps (SB3's own bar needs ``rich``)."""

    def __init__(self, total: int, description: str):
        super().__init__()
        self.total = total
        self.description = description
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, desc=self.description, unit="step", leave=False)

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
