"""The zoom policies g_i: their image encoder for Stable-Baselines3 and their safe storage."""

from razn.policy.features import PolicyNetConfig, ZoomFeatures
from razn.policy.store import build_policy, load_policy, save_policy

__all__ = ["PolicyNetConfig", "ZoomFeatures", "build_policy", "load_policy", "save_policy"]
