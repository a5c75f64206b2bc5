"""Ground-truth label masks: read at any downsample of the slide, write as pyramidal TIFF.

See :mod:`razn.data.masks.reader` for the coordinate and sampling conventions.
"""

from razn.data.masks.reader import IGNORE, LabelMask, MaskLevel, infer_downsample, open_mask
from razn.data.masks.writer import write_label_tiff

__all__ = [
    "IGNORE",
    "LabelMask",
    "MaskLevel",
    "infer_downsample",
    "open_mask",
    "write_label_tiff",
]
