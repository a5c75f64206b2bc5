"""Inspect what the zoom policy did on a slide: its outputs as one object, and figures.

    from razn.inspection import SlideOutputs, figures
    outputs = SlideOutputs.open("out/synth_004")
    outputs.decisions()                    # pandas DataFrame, one row per node
    figures.zoom_map_figure(outputs)       # a matplotlib Figure

See :mod:`razn.inspection.outputs`, :mod:`~razn.inspection.oracle` (the oracle's reward
per decision), :mod:`~razn.inspection.stats`, :mod:`~razn.inspection.figures` and
:mod:`~razn.inspection.report` (``razn inspect``).
"""

from razn.inspection.outputs import SlideOutputs

__all__ = ["SlideOutputs"]
