"""TriNet's head (Hermans et al. 2017): GAP -> FC 1024 -> BN -> ReLU -> FC 128."""

import torch.nn.functional as F
from torch import nn

from daaf.config import configurable

from .build import REID_HEADS_REGISTRY


@REID_HEADS_REGISTRY.register()
class TriNetHead(nn.Module):
    """Global average pooling and a 2-layer embedding MLP; no classifier.

    Args:
        in_channels: channels of the backbone's last map.
        mid_dim, embedding_dim: 1024 and 128 in TriNet.
        norm_feat: L2-normalise the test embedding.
    Returns (forward): training {"features": (B, embedding_dim)}; eval (B, embedding_dim).
    """

    @configurable
    def __init__(self, *, in_channels: int, mid_dim: int = 1024, embedding_dim: int = 128, norm_feat: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(in_channels, mid_dim)
        self.bn = nn.BatchNorm1d(mid_dim)
        self.fc2 = nn.Linear(mid_dim, embedding_dim)
        self.norm_feat = norm_feat
        self.feature_dim = embedding_dim
        nn.init.kaiming_normal_(self.fc1.weight, mode="fan_out")
        nn.init.zeros_(self.fc1.bias)
        nn.init.normal_(self.fc2.weight, std=0.001)
        nn.init.zeros_(self.fc2.bias)

    @classmethod
    def from_config(cls, cfg, input_shape):
        h = cfg.MODEL.HEADS
        return {"in_channels": input_shape.channels, "mid_dim": h.MID_DIM, "embedding_dim": h.EMBEDDING_DIM, "norm_feat": h.NORM_FEAT}

    def forward(self, features):
        pooled = F.adaptive_avg_pool2d(features, 1).flatten(1)
        embedding = self.fc2(F.relu(self.bn(self.fc1(pooled))))
        if self.training:
            return {"features": embedding}
        return F.normalize(embedding, dim=1) if self.norm_feat else embedding
