"""One factory for the per-level segmentation networks (segmentation-models-pytorch).

Nothing is downloaded: encoders start from random weights (``encoder_weights=None``).
The default, a U-Net on timm's MobileNetV3-small, runs a 256² patch in about 20 ms
on two CPU cores; ``resnet18`` is about four times slower.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from razn.config import check_range
from razn.errors import ConfigError

# ImageNet statistics: a neutral choice for RGB input without pretrained weights.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SegmenterConfig:
    """Architecture of one segmentation network."""

    arch: str = "Unet"
    """segmentation-models-pytorch architecture: Unet, FPN, DeepLabV3Plus, Linknet, …"""
    encoder: str = "tu-mobilenetv3_small_100"
    """Encoder name as smp spells it (``resnet18``, ``mobilenet_v2``, ``tu-…`` for timm)."""
    encoder_depth: int = 5
    """Number of encoder stages (3–5); fewer is faster and sees less context."""
    decoder_channels: tuple[int, ...] = (64, 32, 24, 16, 8)
    """Decoder widths, one per encoder stage (U-Net family only)."""

    def __post_init__(self) -> None:
        check_range("model.encoder_depth", self.encoder_depth, 3, 5)
        if self.arch in _UNET_LIKE and len(self.decoder_channels) != self.encoder_depth:
            raise ConfigError(
                f"model.decoder_channels needs {self.encoder_depth} entries (one per encoder "
                f"stage), got {len(self.decoder_channels)}"
            )


_UNET_LIKE = {"Unet", "UnetPlusPlus", "MAnet"}


class Segmenter(nn.Module):
    """A segmentation network that takes raw ``uint8`` patches.

    Input ``(N, 3, H, W)`` uint8 (or float in 0–255); output logits ``(N, K, H, W)``.
    Normalisation lives inside the module so training and inference cannot disagree.
    """

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, network: nn.Module, num_classes: int):
        super().__init__()
        self.network = network
        self.num_classes = num_classes
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = (patches.float() - self.mean) / self.std
        return self.network(x)


def create_segmenter(config: SegmenterConfig, num_classes: int) -> Segmenter:
    """Build an untrained :class:`Segmenter` from ``config`` for ``num_classes`` classes."""
    import segmentation_models_pytorch as smp

    kwargs: dict[str, object] = {"encoder_depth": config.encoder_depth}
    if config.arch in _UNET_LIKE:
        kwargs["decoder_channels"] = list(config.decoder_channels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # smp/timm chatter about unused pretrained configs
            network = smp.create_model(
                config.arch,
                encoder_name=config.encoder,
                encoder_weights=None,
                in_channels=3,
                classes=num_classes,
                **kwargs,
            )
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot build model arch={config.arch!r} encoder={config.encoder!r}: {exc}"
        ) from None
    return Segmenter(network, num_classes)
