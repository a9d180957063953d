from .build import BACKBONE_REGISTRY, Backbone, ShapeSpec, build_backbone
from .resnet import ResNet, build_resnet_backbone
