"""Segmentation networks f_i: the factory, safe checkpoints, and batched inference."""

from razn.models.checkpoint import load_segmenter, save_segmenter
from razn.models.factory import Segmenter, SegmenterConfig, create_segmenter
from razn.models.inference import class_labels, predict_probs, select_device, tissue_labels

__all__ = [
    "Segmenter",
    "SegmenterConfig",
    "class_labels",
    "create_segmenter",
    "load_segmenter",
    "predict_probs",
    "save_segmenter",
    "select_device",
    "tissue_labels",
]
