"""Warm-start a zoom policy on the cached rewards of both actions before PPO runs.

The zoom environment is a contextual bandit whose reward cache knows, for every patch, what
*both* actions earn: breaking 0, zooming (or refining) the cached reward ``r``. PPO only
sees the reward of the action it sampled, so its gradient is a noisy estimate of
``∇ Σ r · P(zoom)``, and the rewards are heavy-tailed (a few patches worth a lot, most
worth ``−λ · cost``). The warm start fits the same policy network to the full-information
objective first:
a cost-sensitive logistic loss ``Σ |r| · BCE(logit_zoom − logit_break, r > 0)``, whose
minimiser takes the better action wherever the observation tells them apart (a wrong
decision costs exactly ``|r|``), and the value head to the reward the policy then expects
(``r · P(zoom)``). PPO then trains the warm policy as usual, on the same reward.

Measured on the four-class benchmark's trees (CHANGELOG, session 22) it is no gain over
PPO alone, and its fit shows why: with full information the network finds only a third of
the oracle's reward even on its own training patches. It is off by default; the record it
writes (:class:`WarmStartReport`) is a quick check of how much of the oracle's reward a
policy's observation can tell on a user's own data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional torch alias

from razn.engine.deciders import zoom_probability


@dataclass(frozen=True)
class WarmStartReport:
    """What the warm start reached on its training patches."""

    epochs: int
    patches: int
    loss: float
    """Weighted logistic loss of the last epoch (per unit of mean ``|r|``)."""
    reward: float
    """Summed reward of the patches the warm policy zooms (P(zoom) > 0.5)."""
    oracle: float
    """Summed positive reward: zooming exactly the patches that pay."""


def warm_start(
    policy: Any,
    observations: Mapping[str, np.ndarray],
    rewards: np.ndarray,
    epochs: int,
    *,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    value_weight: float = 0.5,
    seed: int = 0,
) -> WarmStartReport:
    """Fit SB3 actor-critic ``policy`` (action 1 = zoom) to the zoom ``rewards`` ``(N,)`` of
    the patches ``observations`` (arrays ``(N, …)`` in the policy's observation space) for
    ``epochs`` passes in shuffled minibatches; leaves the policy in evaluation mode."""
    values = np.asarray(rewards, np.float64).reshape(-1)
    count = len(values)
    weights = np.abs(values)
    scale = float(weights.mean()) if count else 0.0
    if scale == 0.0 or epochs <= 0:  # nothing to learn: every patch is indifferent
        return WarmStartReport(max(epochs, 0), count, 0.0, 0.0, float(values.clip(0).sum()))
    generator = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    policy.set_training_mode(True)
    loss_sum = 0.0
    for _ in range(epochs):
        loss_sum = 0.0
        for batch in np.array_split(generator.permutation(count), -(-count // batch_size)):
            loss = _batch_loss(policy, observations, values, batch, scale, value_weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            loss_sum += float(loss.detach()) * len(batch)
    policy.set_training_mode(False)
    chunks = [
        zoom_probability(
            policy, {key: array[start : start + batch_size] for key, array in observations.items()}
        )
        for start in range(0, count, batch_size)
    ]
    zoom = np.concatenate(chunks) > 0.5
    return WarmStartReport(
        epochs, count, loss_sum / count, float(values[zoom].sum()), float(values.clip(0).sum())
    )


def _batch_loss(
    policy: Any,
    observations: Mapping[str, np.ndarray],
    values: np.ndarray,
    batch: np.ndarray,
    scale: float,
    value_weight: float,
) -> torch.Tensor:
    """Weighted logistic loss of the zoom margin plus ``value_weight`` × the value error."""
    tensors, _ = policy.obs_to_tensor({key: array[batch] for key, array in observations.items()})
    reward = torch.as_tensor(values[batch] / scale, dtype=torch.float32)
    log_probs = policy.get_distribution(tensors).distribution.logits  # (B, 2), normalised
    margin = log_probs[:, 1] - log_probs[:, 0]
    actor = (
        reward.abs()
        * F.binary_cross_entropy_with_logits(margin, (reward > 0).float(), reduction="none")
    ).mean()
    expected = reward * torch.sigmoid(margin).detach()  # the reward the policy now expects
    critic = F.mse_loss(policy.predict_values(tensors).squeeze(-1), expected * scale)
    return actor + value_weight * critic / (scale * scale)
