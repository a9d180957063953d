"""Cross-entropy with label smoothing on the head's identity logits."""

import torch.nn.functional as F
from torch import nn

from daaf.config import configurable

from .build import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class CrossEntropyLoss(nn.Module):
    """weight x CE(logits, pids) with targets (1 - eps) one-hot + eps / C (BoT: eps = 0.1)."""

    name = "loss_cls"

    @configurable
    def __init__(self, *, epsilon: float = 0.1, weight: float = 1.0):
        super().__init__()
        self.epsilon, self.weight = epsilon, weight

    @classmethod
    def from_config(cls, cfg, feature_dim=None):
        return {"epsilon": cfg.MODEL.LOSSES.CE.EPSILON, "weight": cfg.MODEL.LOSSES.CE.WEIGHT}

    def forward(self, head_outputs, pids):
        return self.weight * F.cross_entropy(head_outputs["logits"], pids, label_smoothing=self.epsilon)
