"""ReIDNetwork: normalise -> backbone -> head (+ training-only DAAF branches)."""

import copy
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from daaf.config import configurable
from daaf.data.batch import ReIDBatch
from daaf.modeling.attention import ChannelGroup, KeypointHeatmaps, attention_branch_input_fields, build_attention_branches
from daaf.modeling.backbones import build_backbone
from daaf.modeling.heads import build_heads
from daaf.modeling.losses import build_losses
from daaf.utils.comm import unwrap_model

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

    forward(batch): a :class:`ReIDBatch` (images (B, 3, H, W) uint8 or float 0-255; in training
    pids and the fields the branches read, see :meth:`input_fields`) or, in eval mode, a bare
    image tensor. Training returns {loss name: scalar}; eval returns embeddings (B, D).

    Tools reach the branches through its methods (:meth:`branch`, :meth:`channel_groups`,
    :meth:`keypoint_heatmaps`, :meth:`inference_network`, ...), never by a branch's name.
    """

    # state-dict keys under this prefix belong to the training-only branches
    _BRANCH_PREFIX = "branches."

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

    @classmethod
    def input_fields(cls, cfg) -> frozenset:
        """The batch fields it trains on beyond images and pids: those of its attention branches."""
        return attention_branch_input_fields(cfg)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def branch_names(self) -> Tuple[str, ...]:
        """The names of its training-only branches, in the order they run."""
        return tuple(self.branches)

    def branch(self, name: str) -> nn.Module:
        """The training-only branch ``name``; a KeyError names the branches it has."""
        if name not in self.branches:
            raise KeyError(f"no attention branch '{name}' in this network (it has: {', '.join(self.branches) or 'none'})")
        return self.branches[name]

    def describe(self) -> str:
        """A short name for logs and plots, e.g. "TriNetHead, ResNet-18 + HAB + PAB"."""
        return " + ".join([f"{type(self.heads).__name__}, {self.backbone.describe()}", *self.branches])

    def channel_groups(self) -> List[ChannelGroup]:
        """Every branch's channel groups (see ATTENTION_BRANCH_REGISTRY): channels of a backbone stage
        trained to stand for one part each."""
        return [g for b in self.branches.values() if hasattr(b, "channel_groups") for g in b.channel_groups()]

    @property
    def predicts_keypoints(self) -> bool:
        """Whether a branch predicts keypoint heatmaps (:meth:`keypoint_heatmaps` is not empty)."""
        return any(getattr(b, "predicts_keypoints", False) for b in self.branches.values())

    def keypoint_heatmaps(self, features: Dict[str, torch.Tensor]) -> List[KeypointHeatmaps]:
        """Every branch's keypoint heatmaps for the backbone ``features``."""
        return [h for b in self.branches.values() if hasattr(b, "keypoint_heatmaps") for h in b.keypoint_heatmaps(features)]

    @classmethod
    def is_training_only_key(cls, key: str) -> bool:
        """Whether a state-dict key is of a training-only branch (absent from the inference network)."""
        return key.startswith(cls._BRANCH_PREFIX)

    def inference_network(self) -> nn.Module:
        """A deep copy without the training-only branches, in eval mode: exactly the base network
        (same parameters, FLOPs and outputs)."""
        branches, self.branches = self.branches, nn.ModuleDict()
        try:
            base = copy.deepcopy(self)
        finally:
            self.branches = branches
        return base.eval()

    def preprocess_image(self, batch) -> torch.Tensor:
        """The images of a ReIDBatch, or an image tensor, (B, 3, H, W) uint8/float 0-255 ->
        normalised float on the model's device."""
        images = batch.images if isinstance(batch, ReIDBatch) else batch
        images = images.to(self.device, non_blocking=True).float()
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, batch):
        if isinstance(batch, ReIDBatch):
            batch = batch.to(self.device, non_blocking=True)
        features = self.backbone(self.preprocess_image(batch))
        outputs = self.heads(features[self.head_in_feature])
        if not self.training:
            return outputs
        if not isinstance(batch, ReIDBatch):
            raise TypeError(f"training needs a ReIDBatch (images, pids, ...), got {type(batch).__name__}")
        losses = {loss.name: loss(outputs, batch.pids) for loss in self.losses}
        for branch in self.branches.values():
            losses.update(branch(features, batch))
        return losses


def strip_branches(model: nn.Module) -> nn.Module:
    """The inference network of ``model`` (DDP unwrapped): its :meth:`ReIDNetwork.inference_network`,
    or, for a meta-architecture without training-only parts, a deep copy in eval mode."""
    model = unwrap_model(model)
    inference_network = getattr(model, "inference_network", None)
    return inference_network() if inference_network is not None else copy.deepcopy(model).eval()


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in model.parameters())
