"""razn: whole-slide image segmentation with reinforcement-learned zooming.

Coordinates everywhere follow OpenSlide: a ``location`` is ``(x, y)`` in level-0
pixels, a ``size`` is ``(w, h)`` in pixels of the level being read, and arrays are
indexed ``[y, x]``.
"""

from razn.errors import (
    AnnotationError,
    CheckpointError,
    ConfigError,
    ManifestError,
    MaskError,
    RaznError,
    SlideError,
)

__version__ = "0.1.0"

__all__ = [
    "AnnotationError",
    "CheckpointError",
    "ConfigError",
    "ManifestError",
    "MaskError",
    "RaznError",
    "SlideError",
    "__version__",
]
