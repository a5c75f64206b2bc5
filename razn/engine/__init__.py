"""The zoom engine: one loop for razn and every baseline, differing only in the decider."""

from razn.engine.deciders import (
    Decider,
    FixedLevel,
    PolicyDecider,
    RandomZoom,
    UncertaintyThreshold,
)
from razn.engine.zoom import EngineConfig, SlideResult, ZoomEngine

__all__ = [
    "Decider",
    "EngineConfig",
    "FixedLevel",
    "PolicyDecider",
    "RandomZoom",
    "SlideResult",
    "UncertaintyThreshold",
    "ZoomEngine",
]
