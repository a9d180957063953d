from .build import BACKBONE_REGISTRY, Backbone, ShapeSpec, build_backbone
from .detectron2_adapter import Detectron2BackboneAdapter, build_detectron2_backbone
from .resnet import ResNet, build_daaf_resnet_backbone
