"""DAAF's training-only attention branches: HAB (person mask) and PAB (keypoint groups)."""

import copy
from collections import OrderedDict
from typing import List, Optional, Sequence

import torch
from torch import nn

from daaf.config import configurable
from daaf.data.batch import PersonLabels, ReIDBatch
from daaf.utils.errors import ConfigError

from .build import ATTENTION_BRANCH_REGISTRY, ChannelGroup, KeypointHeatmaps
from .decoder import Decoder, Predictor
from .keypoint_groups import keypoint_group_name, resolve_keypoint_groups
from .targets import keypoint_heatmaps, masked_squared_error, part_image_targets, resize_masks

__all__ = ["HumanAttentionBranch", "PartAttentionBranch"]


def _check_stage(shapes: dict, stage: str, key: str) -> None:
    """ConfigError naming config ``key`` unless ``stage`` is one of the backbone's ``shapes``."""
    if stage not in shapes:
        raise ConfigError(f"{key}: '{stage}' is not a stage of the backbone ({list(shapes)})")


def copy_stages_after(backbone, stage: str, key: str) -> nn.Sequential:
    """A new module computing the backbone's last stage from the output of ``stage``: a deep copy
    (same weights, its own parameters) of the stages after it. ConfigError naming config ``key``
    when the backbone is no chain of stages or ``stage`` has none after it."""
    try:
        stages = backbone.stage_modules()
    except NotImplementedError as e:
        raise ConfigError(f"{key}: {e}, so no stages can be copied; use MODEL.DAAF.HAB.ENCODER shared") from None
    names = list(stages)
    if stage not in names[:-1]:
        raise ConfigError(f"{key}: '{stage}' has no stages after it to copy (expected one of {names[:-1]})")
    return nn.Sequential(OrderedDict((n, copy.deepcopy(stages[n])) for n in names[names.index(stage) + 1 :]))


def _person_labels(batch: ReIDBatch, field: str) -> PersonLabels:
    """The batch's person labels, which hold ``field``; ConfigError when the batch lacks them."""
    labels = batch.person_labels
    if labels is None or not labels.has(field):
        raise ConfigError(f"DAAF attention branches need person labels: the batch has no {field} (is DATASETS.LABELS_DIR right?)")
    return labels


@ATTENTION_BRANCH_REGISTRY.register(name="HAB")
class HumanAttentionBranch(nn.Module):
    """Holistic Attention Branch: predicts the person mask from a low-level stage (paper Eq. 2).

    Args:
        source: backbone stage it reads ("res2" in the paper).
        encoder: module mapping the source map to the final map (a copy of the backbone's later
            stages, "copy"), or None to read the backbone's own final map ("shared").
        decoder, predictor: upsampling deconvs and the 1x1 conv to 1 map.
        loss_weight: lambda_h. reduction: "sum" (paper) or "mean" (released code).
    forward(features, batch: ReIDBatch) -> {"loss_hab": scalar}; the batch needs person labels
    with masks.
    """

    @configurable
    def __init__(
        self,
        *,
        source: str,
        encoder: Optional[nn.Module],
        decoder: Decoder,
        predictor: Predictor,
        loss_weight: float,
        reduction: str = "sum",
    ):
        super().__init__()
        self.source = source
        self.encoder = encoder
        self.decoder = decoder
        self.predictor = predictor
        self.loss_weight = loss_weight
        self.reduction = reduction

    # its prediction is a person mask: the analyses draw the label file's mask beside it
    predicts_person_mask = True

    @classmethod
    def input_fields(cls, cfg):
        """The batch fields it trains on: the person masks."""
        return {"masks"}

    @classmethod
    def from_config(cls, cfg, backbone):
        hab = cfg.MODEL.DAAF.HAB
        shapes = backbone.output_shape()
        if hab.ENCODER == "copy":
            _check_stage(shapes, hab.SOURCE, "MODEL.DAAF.HAB.SOURCE")
            source, encoder = hab.SOURCE, copy_stages_after(backbone, hab.SOURCE, "MODEL.DAAF.HAB.SOURCE")
        elif hab.ENCODER == "shared":
            source, encoder = "res5", None
        else:
            raise ConfigError(f"MODEL.DAAF.HAB.ENCODER: expected 'copy' or 'shared', got '{hab.ENCODER}'")
        decoder = Decoder(cfg, in_channels=shapes["res5"].channels)
        return {
            "source": source,
            "encoder": encoder,
            "decoder": decoder,
            "predictor": Predictor(decoder.out_channels, 1, cfg.MODEL.DAAF.DECODER.ACTIVATION),
            "loss_weight": hab.LOSS_WEIGHT,
            "reduction": hab.LOSS_REDUCTION,
        }

    def predict(self, features: dict) -> torch.Tensor:
        """(B, 1, h, w) predicted person mask."""
        x = features[self.source]
        if self.encoder is not None:
            x = self.encoder(x)
        return Predictor.stacked([self.predictor], *self.decoder.forward_before_last_norm(x))[0]

    def forward(self, features: dict, batch: ReIDBatch) -> dict:
        pred = self.predict(features)
        labels = _person_labels(batch, "masks")
        loss = masked_squared_error(pred, resize_masks(labels.masks, pred.shape[-2:]), labels.has_label, self.reduction)
        return {"loss_hab": self.loss_weight * loss}


@ATTENTION_BRANCH_REGISTRY.register(name="PAB")
class PartAttentionBranch(nn.Module):
    """Part Attention Branch: the final map's channels are split into G groups of floor(C/G)
    channels (the leftover channels are unused); group g predicts the Gaussian heatmaps of its
    keypoints (paper Eq. 4) or, with target "part_image", the g-th horizontal stripe of the image.

    Args:
        groups: keypoint ids per group (e.g. ``resolve_keypoint_groups("coco6")``).
        in_channels: C of the source map.
        decoders: one Decoder shared by all groups, or one per group.
        predictors: one 1x1 conv per group.
        target: "keypoints" or "part_image". sigma: heatmap std in input pixels (the same Gaussian
            on the image whatever the output stride of the base network).
    forward(features, batch: ReIDBatch) -> {"loss_pab": scalar}; the batch needs images
    (B, 3, H, W) and, for keypoint targets, person labels with keypoints.
    """

    @configurable
    def __init__(
        self,
        *,
        groups: Sequence[Sequence[int]],
        in_channels: int,
        decoders: List[Decoder],
        predictors: List[Predictor],
        source: str = "res5",
        target: str = "keypoints",
        sigma: float = 4.0,
        loss_weight: float = 0.003,
        reduction: str = "sum",
    ):
        super().__init__()
        if target not in ("keypoints", "part_image"):
            raise ConfigError(f"MODEL.DAAF.PAB.TARGET: expected 'keypoints' or 'part_image', got '{target}'")
        if len(decoders) not in (1, len(groups)) or len(predictors) != len(groups):
            raise ValueError("PAB needs one shared decoder or one per group, and one predictor per group")
        self.groups = [list(g) for g in groups]
        self.group_channels = in_channels // len(groups)
        self.source = source
        self.decoders = nn.ModuleList(decoders)
        self.predictors = nn.ModuleList(predictors)
        self.target = target
        self.sigma = sigma
        self.loss_weight = loss_weight
        self.reduction = reduction

    @classmethod
    def input_fields(cls, cfg):
        """The batch fields it trains on: the keypoints (none for part-image targets, which come
        from the image itself)."""
        return {"keypoints"} if cfg.MODEL.DAAF.PAB.TARGET == "keypoints" else set()

    @classmethod
    def from_config(cls, cfg, backbone):
        pab = cfg.MODEL.DAAF.PAB
        shapes = backbone.output_shape()
        _check_stage(shapes, pab.SOURCE, "MODEL.DAAF.PAB.SOURCE")
        channels = shapes[pab.SOURCE].channels
        groups = resolve_keypoint_groups(pab.GROUPS, pab.GROUP_LIST, channels)
        group_channels = channels // len(groups)
        num_decoders = 1 if pab.SHARED_DECODER else len(groups)
        decoders = [Decoder(cfg, in_channels=group_channels) for _ in range(num_decoders)]
        activation = cfg.MODEL.DAAF.DECODER.ACTIVATION
        out_per_group = [3 if pab.TARGET == "part_image" else len(g) for g in groups]
        return {
            "groups": groups,
            "in_channels": channels,
            "decoders": decoders,
            "predictors": [Predictor(decoders[0].out_channels, n, activation) for n in out_per_group],
            "source": pab.SOURCE,
            "target": pab.TARGET,
            "sigma": pab.SIGMA,
            "loss_weight": pab.LOSS_WEIGHT,
            "reduction": pab.LOSS_REDUCTION,
        }

    @property
    def group_names(self) -> List[str]:
        """Each group's body parts, e.g. "head", "wrists+hips" (:func:`keypoint_group_name`)."""
        return [keypoint_group_name(g) for g in self.groups]

    @property
    def predicts_keypoints(self) -> bool:
        """Whether its maps are keypoint heatmaps (not image stripes)."""
        return self.target == "keypoints"

    def channel_groups(self) -> List[ChannelGroup]:
        """The channel group of the source map that each keypoint group reads."""
        return [ChannelGroup(name, self.source, self.group_slice(g)) for g, name in enumerate(self.group_names)]

    def keypoint_heatmaps(self, features: dict) -> List[KeypointHeatmaps]:
        """Per group, its keypoints' predicted heatmaps (none for stripe-image targets)."""
        if not self.predicts_keypoints:
            return []
        return [KeypointHeatmaps(name, list(g), p) for name, g, p in zip(self.group_names, self.groups, self.predict(features))]

    def cross_group_predictions(self, features: dict) -> List[List[torch.Tensor]]:
        """[i][j]: the maps of group j's predictor fed with the decoded channels of group i
        (the 1x1-conv shuffle of projects/DAAF/analysis/conv_shuffle.py; the diagonal is ``predict``)."""
        decoded = self.decode_groups(features[self.source])
        return [[predictor(d) for predictor in self.predictors] for d in decoded]

    def group_slice(self, g: int) -> slice:
        """Channels of the source map read by group ``g`` (disjoint, in order)."""
        return slice(g * self.group_channels, (g + 1) * self.group_channels)

    def decode_group(self, x: torch.Tensor, g: int) -> torch.Tensor:
        """The decoded channels of group ``g`` of the source map ``x`` (the shared decoder, or the
        group's own): (B, C, h, w) -> (B, decoder channels, h * 2^n, w * 2^n)."""
        decoder = self.decoders[0] if len(self.decoders) == 1 else self.decoders[g]
        return decoder(x[:, self.group_slice(g)])

    def decode_groups(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The decoded channels of every group of the source map ``x`` (B, C, h, w): G tensors
        (B, decoder channels, h * 2^n, w * 2^n).

        A shared decoder decodes all groups in one call, stacked along the batch: its BatchNorm
        then normalises training batches with statistics over all groups, the same population its
        running statistics (used at inference) average. Called once per group, each group would be
        normalised by its own batch statistics in training but by the running statistics of a
        mixture of groups at inference, which makes the inference predictions meaningless.
        """
        if len(self.decoders) > 1:
            return [self.decode_group(x, g) for g in range(len(self.groups))]
        return list(self._decode_stacked(x).unflatten(0, (len(self.groups), len(x))).unbind(0))

    def _stack_groups(self, x: torch.Tensor) -> torch.Tensor:
        """Every group's channels of ``x`` (B, C, h, w), stacked group-major along the batch:
        (G * B, group channels, h, w)."""
        b, _, h, w = x.shape
        g, c = len(self.groups), self.group_channels
        return x[:, : g * c].reshape(b, g, c, h, w).transpose(0, 1).reshape(g * b, c, h, w)

    def _decode_stacked(self, x: torch.Tensor) -> torch.Tensor:
        """The shared decoder on the stacked groups of ``x``: (G * B, decoder channels, h * 2^n, w * 2^n)."""
        return self.decoders[0](self._stack_groups(x))

    def predict(self, features: dict) -> List[torch.Tensor]:
        """Per group: (B, len(group), h, w) heatmaps, or (B, 3, h, w) stripe images."""
        x = features[self.source]
        if len(self.decoders) == 1:  # every group's predictor in one call on the stacked map
            return Predictor.stacked(self.predictors, *self.decoders[0].forward_before_last_norm(self._stack_groups(x)))
        decoded = [d.forward_before_last_norm(x[:, self.group_slice(g)]) for g, d in enumerate(self.decoders)]
        return [Predictor.stacked([p], d, norm)[0] for p, (d, norm) in zip(self.predictors, decoded)]

    def targets(self, batch: ReIDBatch, output_size) -> List[torch.Tensor]:
        """Per group, the target of ``predict``'s output: heatmaps of the group's keypoints
        (B, len(group), h, w) or the group's image stripe (B, 3, h, w)."""
        if self.target == "keypoints":
            input_size = batch.images.shape[-2:]
            sigma = self.sigma * output_size[0] / input_size[0]  # input pixels -> output pixels
            keypoints = _person_labels(batch, "keypoints").keypoints
            heatmaps = keypoint_heatmaps(keypoints, input_size, output_size, sigma)
            return [heatmaps[:, g] for g in self.groups]
        stripes = part_image_targets(batch.images, len(self.groups), output_size)
        return list(stripes.unbind(dim=1))

    def forward(self, features: dict, batch: ReIDBatch) -> dict:
        preds = self.predict(features)
        targets = self.targets(batch, preds[0].shape[-2:])
        if self.target == "keypoints":
            keep = _person_labels(batch, "keypoints").has_label
            num_maps = sum(len(g) for g in self.groups)  # K in Eq. 4
        else:  # the image itself is the target: every crop has one
            keep = torch.ones(len(preds[0]), dtype=torch.bool, device=preds[0].device)
            num_maps = len(self.groups)
        if self.reduction == "mean":
            num_elements = sum(p[0].numel() for p in preds)
            loss = sum(masked_squared_error(p, t, keep, "sum", per_sample_maps=1) for p, t in zip(preds, targets)) / num_elements
        else:
            loss = sum(masked_squared_error(p, t, keep, "sum", per_sample_maps=num_maps) for p, t in zip(preds, targets))
        return {"loss_pab": self.loss_weight * loss}
