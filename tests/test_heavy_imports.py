"""Importing the network stack with the garbage collector paused."""

from __future__ import annotations

import gc
import sys

from razn.heavy_imports import NETWORK_STACK, collector_paused, import_network_stack


def test_the_collector_is_paused_inside_and_restored_with_what_was_made_frozen():
    frozen = gc.get_freeze_count()
    gc.enable()
    try:
        with collector_paused():
            assert not gc.isenabled()
            made = [[index] for index in range(100)]  # lists are tracked by the collector
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(made)
        gc.disable()  # a caller that had paused it keeps it paused
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


def test_import_network_stack_imports_torch_and_smp_and_restores_the_collector():
    gc.enable()
    try:
        import_network_stack(policies=True)
        assert all(name in sys.modules for name in NETWORK_STACK)
        assert "stable_baselines3.common.policies" in sys.modules
        assert gc.isenabled()
    finally:
        gc.unfreeze()
