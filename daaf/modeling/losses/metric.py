"""Batch-hard triplet loss and center loss."""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from daaf.config import configurable
from daaf.utils import comm

from .build import LOSS_REGISTRY


def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(M, D), (N, D) -> (M, N) Euclidean distances (gradient-safe at 0)."""
    d2 = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1).unsqueeze(0) - 2.0 * x @ y.t()
    return d2.clamp(min=1e-12).sqrt()


def hard_example_mining(dist_mat: torch.Tensor, pids: torch.Tensor):
    """For each anchor, the hardest positive (largest distance) and hardest negative (smallest).

    (B, B) distances, (B,) pids -> (B,) d_ap, (B,) d_an. An anchor without a positive gets 0 (the
    anchor itself), one without a negative +inf: such rows carry no signal."""
    same = pids.unsqueeze(0) == pids.unsqueeze(1)
    d_ap = (dist_mat * same).max(dim=1).values
    d_an = dist_mat.masked_fill(same, float("inf")).min(dim=1).values
    return d_ap, d_an


@LOSS_REGISTRY.register()
class TripletLoss(nn.Module):
    """Batch-hard triplet loss (Hermans et al. 2017) on Euclidean distances of head "features".

    margin 0: soft margin ``softplus(d_ap - d_an)`` (TriNet); margin > 0: ``relu(d_ap - d_an + m)``.
    Returns weight x the mean over anchors that have a negative in the batch. With several
    processes the hardest examples are mined in the whole global batch (every rank's features are
    gathered, with their gradients, as fast-reid does): training on N processes optimises the loss
    one process with the whole batch would.
    """

    name = "loss_triplet"

    @configurable
    def __init__(self, *, margin: float = 0.0, weight: float = 1.0, norm_feat: bool = False):
        super().__init__()
        self.margin, self.weight, self.norm_feat = margin, weight, norm_feat

    @classmethod
    def from_config(cls, cfg, feature_dim=None):
        t = cfg.MODEL.LOSSES.TRI
        return {"margin": t.MARGIN, "weight": t.WEIGHT, "norm_feat": t.NORM_FEAT}

    def forward(self, head_outputs, pids):
        feats = head_outputs["features"]
        if self.norm_feat:
            feats = F.normalize(feats, dim=1)
        feats, pids = comm.all_gather_with_grad(feats), comm.all_gather_with_grad(pids)
        d_ap, d_an = hard_example_mining(euclidean_dist(feats, feats), pids)
        valid = torch.isfinite(d_an)
        if not valid.any():
            return feats.sum() * 0.0
        diff = d_ap[valid] - d_an[valid]
        loss = F.softplus(diff) if self.margin <= 0 else F.relu(diff + self.margin)
        return self.weight * loss.mean()


@LOSS_REGISTRY.register()
class CenterLoss(nn.Module):
    """Center loss (Wen et al. 2016) as in Bag of Tricks: ``sum_i ||f_i - c_{y_i}||^2 / B``.

    The centres are a buffer updated inside ``forward`` by plain SGD with ``center_lr`` on the
    gradient of the UNWEIGHTED loss. This equals BoT's separate SGD(lr 0.5) optimizer for the
    centres whose gradients are rescaled by 1/weight, without a second optimizer. Across
    processes the centre updates are averaged, so all ranks keep identical centres.
    """

    name = "loss_center"

    @configurable
    def __init__(self, *, num_classes: int, feat_dim: int, weight: float = 0.0005, center_lr: float = 0.5):
        super().__init__()
        self.register_buffer("centers", torch.randn(num_classes, feat_dim))
        self.weight, self.center_lr = weight, center_lr

    @classmethod
    def from_config(cls, cfg, feature_dim):
        return {
            "num_classes": cfg.MODEL.HEADS.NUM_CLASSES,
            "feat_dim": feature_dim,
            "weight": cfg.MODEL.LOSSES.CENTER.WEIGHT,
            "center_lr": cfg.SOLVER.CENTER_LR,
        }

    def forward(self, head_outputs, pids):
        feats = head_outputs["features"]
        centers = self.centers[pids]
        loss = (feats - centers).pow(2).sum() / feats.shape[0]
        if self.training:
            self._update_centers(feats.detach(), pids)
        return self.weight * loss

    @torch.no_grad()
    def _update_centers(self, feats, pids):
        # d loss / d c_j = -2 / B * sum_{i: y_i = j} (f_i - c_j)
        grad = torch.zeros_like(self.centers)
        grad.index_add_(0, pids, -2.0 * (feats - self.centers[pids]) / feats.shape[0])
        if comm.get_world_size() > 1:
            dist.all_reduce(grad)
            grad /= comm.get_world_size()
        self.centers.sub_(self.center_lr * grad)
