"""Importing torch and the libraries built on it without the garbage collector's help.

torch, segmentation-models-pytorch (with timm, torchvision and, through torchvision,
``torch._dynamo`` and sympy) and Stable-Baselines3 create about a million Python objects
while they import. None of them is garbage, yet each allocation burst triggers the cyclic
collector, whose full collections rescan everything made so far: on this project's 2-core
machine that was a quarter of the import (3.7 s → 2.9 s with the collector paused, under
load; issue 18's start-up target). :func:`import_network_stack` imports them with the
collector paused, then ``gc.freeze()`` moves what they made to the permanent generation,
which later collections skip (module objects live as long as the process anyway).

Commands call it before their first torch import; ``razn --help`` and ``razn info`` never
do (they import no torch).
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator
from contextlib import contextmanager

NETWORK_STACK = ("torch", "segmentation_models_pytorch")
"""What every command that runs a segmenter imports."""
POLICY_STACK = ("stable_baselines3.common.policies",)
"""What loading or training a zoom policy adds."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block; on leaving it, freeze what
    exists (the permanent generation) and restore the collector's previous state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def import_network_stack(policies: bool = True) -> None:
    """Import torch and segmentation-models-pytorch (and, with ``policies``,
    Stable-Baselines3) with the collector paused; a no-op once they are imported."""
    with collector_paused():
        for name in NETWORK_STACK + (POLICY_STACK if policies else ()):
            importlib.import_module(name)
