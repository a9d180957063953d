"""BACKBONE_REGISTRY and the Backbone interface: image batch -> dict of named stages."""

from collections import OrderedDict, namedtuple
from typing import Dict

import torch
from torch import nn

from daaf.utils.registry import Registry, get_from_registry

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = """
Backbones by MODEL.BACKBONE.NAME: ``fn(cfg) -> Backbone``. The returned module maps a normalised
float image batch (B, 3, H, W) to a dict of feature maps named "stem", "res2" ... "res5".
"""

ShapeSpec = namedtuple("ShapeSpec", ["channels", "stride"])


class Backbone(nn.Module):
    """Base class: ``forward(x)`` returns {stage name: (B, C, H/stride, W/stride)}."""

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def output_shape(self) -> Dict[str, ShapeSpec]:
        """Channels and stride of each stage returned by ``forward``."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short name for logs and plots (e.g. "ResNet-50")."""
        return type(self).__name__

    def stage_modules(self) -> "OrderedDict[str, nn.Module]":
        """For a backbone that is a chain of stages: the module computing each stage from the
        previous one's output, by stage name in forward order. Others raise NotImplementedError."""
        raise NotImplementedError(f"{type(self).__name__} is not a chain of stages")


def build_backbone(cfg) -> Backbone:
    """Build MODEL.BACKBONE.NAME from the registry."""
    backbone = get_from_registry(BACKBONE_REGISTRY, cfg.MODEL.BACKBONE.NAME, "MODEL.BACKBONE.NAME")(cfg)
    if not isinstance(backbone, Backbone):
        raise TypeError(f"MODEL.BACKBONE.NAME '{cfg.MODEL.BACKBONE.NAME}' must return a daaf Backbone, got {type(backbone)}")
    return backbone
