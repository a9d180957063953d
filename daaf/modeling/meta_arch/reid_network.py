"""ReIDNetwork: normalise -> backbone -> head (+ training-only DAAF branches)."""

import copy
from typing import Dict, List, Sequence

import torch
from torch import nn

from daaf.config import configurable
from daaf.modeling.attention import build_attention_branches
from daaf.modeling.backbones import build_backbone
from daaf.modeling.heads import build_heads
from daaf.modeling.losses import build_losses

from .build import META_ARCH_REGISTRY


@META_ARCH_REGISTRY.register()
class ReIDNetwork(nn.Module):
    """The base ReID network (TriNet / BoT) with optional DAAF attention branches.

    Args:
        backbone: a Backbone returning named stages.
        heads: maps ``backbone(x)[head_in_feature]`` to features / logits / embedding.
        losses: ReID loss modules (each has ``name``), applied to the head's training outputs.
        pixel_mean, pixel_std: per-channel statistics (0-255 scale) used to normalise uint8 input.
        branches: training-only attention branches {name: module}; never run in eval mode.
        head_in_feature: backbone stage fed to the head.

    forward(batch): ``batch`` is a dict with "images" (B, 3, H, W) uint8 or float 0-255, and in
    training "pids" (B,) plus whatever the branches read. A bare image tensor is accepted too.
    Training returns {loss name: scalar}; eval returns embeddings (B, D).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        heads: nn.Module,
        losses: Sequence[nn.Module] = (),
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        branches: Dict[str, nn.Module] = None,
        head_in_feature: str = "res5",
    ):
        super().__init__()
        self.backbone = backbone
        self.heads = heads
        self.losses = nn.ModuleList(losses)
        self.branches = nn.ModuleDict(branches or {})
        self.head_in_feature = head_in_feature
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, -1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, -1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        heads = build_heads(cfg, backbone.output_shape()["res5"])
        return {
            "backbone": backbone,
            "heads": heads,
            "losses": build_losses(cfg, heads.feature_dim),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "branches": build_attention_branches(cfg, backbone),
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batch) -> torch.Tensor:
        """uint8/float 0-255 images (B, 3, H, W) -> normalised float on the model's device."""
        images = batch["images"] if isinstance(batch, dict) else batch
        images = images.to(self.device, non_blocking=True).float()
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, batch):
        images = self.preprocess_image(batch)
        features = self.backbone(images)
        outputs = self.heads(features[self.head_in_feature])
        if not self.training:
            return outputs
        pids = batch["pids"].to(self.device, non_blocking=True)
        losses = {loss.name: loss(outputs, pids) for loss in self.losses}
        batch_on_device = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        for branch in self.branches.values():
            losses.update(branch(features, batch_on_device))
        return losses


def strip_branches(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` without its training-only attention branches: exactly the base
    network (same parameters, FLOPs and outputs in eval mode)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    base = copy.deepcopy(model)
    if hasattr(base, "branches"):
        base.branches = nn.ModuleDict()
    return base.eval()


def branch_parameter_names(model: nn.Module) -> List[str]:
    """State-dict keys that belong to attention branches (absent from the base network)."""
    return [k for k in model.state_dict() if k.startswith("branches.")]
