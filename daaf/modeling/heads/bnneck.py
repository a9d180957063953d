"""Bag of Tricks' BNNeck head (Luo et al. 2019): GAP -> BN (frozen bias) -> bias-free classifier."""

import torch.nn.functional as F
from torch import nn

from daaf.config import configurable
from daaf.utils.errors import ConfigError

from .build import REID_HEADS_REGISTRY


@REID_HEADS_REGISTRY.register()
class BNNeckHead(nn.Module):
    """Args:
        in_channels: channels of the backbone's last map (2048 for ResNet-50).
        num_classes: training identities; 0 builds no classifier (evaluation only).
        neck_feat: test feature "before" or "after" the BN neck.
        norm_feat: L2-normalise the test feature.
    Returns (forward): training {"features": pre-BN (B, C), "logits": (B, num_classes)};
    eval (B, C).
    """

    @configurable
    def __init__(self, *, in_channels: int, num_classes: int, neck_feat: str = "after", norm_feat: bool = False):
        super().__init__()
        if neck_feat not in ("before", "after"):
            raise ConfigError(f"MODEL.HEADS.NECK_FEAT: expected 'before' or 'after', got '{neck_feat}'")
        self.bottleneck = nn.BatchNorm1d(in_channels)
        self.bottleneck.bias.requires_grad_(False)
        nn.init.ones_(self.bottleneck.weight)
        nn.init.zeros_(self.bottleneck.bias)
        self.classifier = nn.Linear(in_channels, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)
        self.neck_feat = neck_feat
        self.feature_dim = in_channels
        self.norm_feat = norm_feat

    @classmethod
    def from_config(cls, cfg, input_shape):
        h = cfg.MODEL.HEADS
        return {"in_channels": input_shape.channels, "num_classes": h.NUM_CLASSES, "neck_feat": h.NECK_FEAT, "norm_feat": h.NORM_FEAT}

    def forward(self, features):
        global_feat = F.adaptive_avg_pool2d(features, 1).flatten(1)
        bn_feat = self.bottleneck(global_feat)
        if self.training:
            if self.classifier is None:
                raise ConfigError("MODEL.HEADS.NUM_CLASSES is 0: BNNeckHead needs the number of training identities to train")
            return {"features": global_feat, "logits": self.classifier(bn_feat)}
        out = bn_feat if self.neck_feat == "after" else global_feat
        return F.normalize(out, dim=1) if self.norm_feat else out
