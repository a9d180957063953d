"""Any backbone of detectron2's BACKBONE_REGISTRY as a DAAF Backbone (needs detectron2).

    MODEL:
      BACKBONE:
        NAME: build_detectron2_backbone
        D2_NAME: build_resnet_backbone     # a name in detectron2's BACKBONE_REGISTRY
        D2_CONFIG: ""                      # optional detectron2 YAML (path or model-zoo name)
        DEPTH: 50
        LAST_STRIDE: 1                     # -> detectron2's RES5_DILATION 2 (ResNet-50/101)
        PRETRAIN_PATH: detectron2://ImageNetPretrained/MSRA/R-50.pkl

detectron2's ImageNet weights expect BGR input normalised with its own pixel statistics: set
INPUT.FORMAT BGR and MODEL.PIXEL_MEAN/STD to detectron2's values when you load them.
"""

import logging
from collections import OrderedDict

from torch import nn

from daaf.utils.detectron2_zoo import detectron2_config_file, fetch_detectron2_weights, load_detectron2_weights, require_detectron2
from daaf.utils.errors import ConfigError

from .build import BACKBONE_REGISTRY, Backbone, ShapeSpec

__all__ = ["Detectron2BackboneAdapter", "build_detectron2_backbone"]

logger = logging.getLogger(__name__)


class Detectron2BackboneAdapter(Backbone):
    """Wraps a detectron2 ``Backbone``; forward returns its output features by name."""

    def __init__(self, d2_backbone: nn.Module):
        super().__init__()
        self.body = d2_backbone
        self._shapes = {name: ShapeSpec(s.channels, s.stride) for name, s in d2_backbone.output_shape().items()}

    def forward(self, x):
        return self.body(x)

    def output_shape(self):
        return dict(self._shapes)

    def describe(self) -> str:
        return f"detectron2 {type(self.body).__name__}"

    def detectron2_checkpoint(self) -> dict:
        """The wrapped backbone's weights as detectron2's ``DetectionCheckpointer`` reads a .pth:
        ``{"model": state dict under detectron2's own names, "__author__", "matching_heuristics"}``.

        The names are those of the detectron2 backbone itself (``stem.conv1.weight``, ...), so it
        loads into the same backbone as it is; ``matching_heuristics`` lets detectron2 match them by
        suffix, so the same file initialises the bottom-up ResNet of a detectron2 FPN model too.
        (A DAAF-ReID training checkpoint cannot serve: its names carry the ``backbone.body.``
        prefix, and a HAB copy encoder holds a second ``res3..res5`` that makes suffixes ambiguous.)
        """
        state = {name: tensor.detach().cpu().clone() for name, tensor in self.body.state_dict().items()}
        return {"model": state, "__author__": "DAAF-ReID", "matching_heuristics": True}

    def stage_modules(self):
        """detectron2's ResNet: its stem and its stages (``stage_names``); other detectron2
        backbones (FPN, ...) are no chain of stages."""
        names = list(getattr(self.body, "stage_names", ()))
        if not names or not hasattr(self.body, "stem"):
            return super().stage_modules()
        return OrderedDict([("stem", self.body.stem)] + [(n, getattr(self.body, n)) for n in names])


@BACKBONE_REGISTRY.register()
def build_detectron2_backbone(cfg) -> Detectron2BackboneAdapter:
    """Build MODEL.BACKBONE.D2_NAME from detectron2's registry with DEPTH / LAST_STRIDE applied."""
    require_detectron2("MODEL.BACKBONE.NAME build_detectron2_backbone")
    from detectron2.config import get_cfg as get_d2_cfg
    from detectron2.layers import ShapeSpec as D2ShapeSpec
    from detectron2.modeling import build_backbone as build_d2_backbone

    b = cfg.MODEL.BACKBONE
    d2cfg = get_d2_cfg()
    if b.D2_CONFIG:
        d2cfg.merge_from_file(detectron2_config_file(b.D2_CONFIG, "MODEL.BACKBONE.D2_CONFIG"))
    d2cfg.MODEL.BACKBONE.NAME = b.D2_NAME
    d2cfg.MODEL.BACKBONE.FREEZE_AT = 0
    d2cfg.MODEL.RESNETS.DEPTH = b.DEPTH
    d2cfg.MODEL.RESNETS.NORM = b.NORM
    d2cfg.MODEL.RESNETS.OUT_FEATURES = ["stem", "res2", "res3", "res4", "res5"]
    if b.DEPTH in (18, 34):
        d2cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
        if b.LAST_STRIDE == 1:
            raise ConfigError("MODEL.BACKBONE.LAST_STRIDE 1 with detectron2's ResNet needs DEPTH 50 or 101 (RES5_DILATION)")
    d2cfg.MODEL.RESNETS.RES5_DILATION = 2 if b.LAST_STRIDE == 1 else 1
    d2_backbone = build_d2_backbone(d2cfg, D2ShapeSpec(channels=3))
    if b.PRETRAIN and not b.PRETRAIN_PATH:
        logger.warning(
            "MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty: detectron2's backbone stays "
            "randomly initialised (give e.g. detectron2://ImageNetPretrained/MSRA/R-50.pkl, or set PRETRAIN False)"
        )
    elif b.PRETRAIN:
        load_detectron2_weights(
            d2_backbone, fetch_detectron2_weights(b.PRETRAIN_PATH, "MODEL.BACKBONE.PRETRAIN_PATH"), "MODEL.BACKBONE.PRETRAIN_PATH"
        )
    return Detectron2BackboneAdapter(d2_backbone)
