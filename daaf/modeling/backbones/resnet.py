"""ResNet-18/34/50/101 (torchvision's architecture and parameter names, so torchvision's ImageNet
weights load as they are) as a Backbone with a LAST_STRIDE option and named stages.

The network is built here rather than by torchvision.models: importing torchvision costs about
3 s per process (it imports torch._dynamo), which every tool, training run and worker would pay.
torchvision is imported only to fetch its ImageNet weights.
"""

import logging
from collections import OrderedDict

import torch
from torch import nn

from daaf.config import configurable
from daaf.utils.errors import ConfigError, UserError
from daaf.utils.file_io import PathManager

from .build import BACKBONE_REGISTRY, Backbone, ShapeSpec

logger = logging.getLogger(__name__)

_STAGES = ("stem", "res2", "res3", "res4", "res5")
# depth -> (torchvision weights enum, residual block, blocks per stage)
_TORCHVISION = {
    18: ("ResNet18_Weights", "basic", (2, 2, 2, 2)),
    34: ("ResNet34_Weights", "basic", (3, 4, 6, 3)),
    50: ("ResNet50_Weights", "bottleneck", (3, 4, 6, 3)),
    101: ("ResNet101_Weights", "bottleneck", (3, 4, 23, 3)),
}


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class _Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride is on the 3x3 convolution."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class _TorchvisionLayout(nn.Module):
    """The modules of torchvision's ``resnet{depth}`` without its classifier, under torchvision's
    names (conv1, bn1, relu, maxpool, layer1..layer4) and with its initialisation."""

    def __init__(self, depth: int):
        super().__init__()
        _, kind, blocks = _TORCHVISION[depth]
        block = _BasicBlock if kind == "basic" else _Bottleneck
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False), nn.BatchNorm2d(planes * block.expansion)
                )
            layers = [block(inplanes, planes, stride, downsample)]
            inplanes = planes * block.expansion
            layers += [block(inplanes, planes) for _ in range(1, count)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*layers))
        # torchvision creates its classifier here; drawing its initial weights too keeps the random
        # stream, and so a seeded initialisation, identical to torchvision's
        nn.Linear(512 * block.expansion, 1000)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


class ResNet(Backbone):
    """ResNet whose forward returns {"stem", "res2", "res3", "res4", "res5"}.

    Args:
        depth: 18, 34, 50 or 101.
        last_stride: stride of res5 (2: output stride 32; 1: output stride 16, as in BoT).
        pretrained: load ImageNet weights (``pretrain_path`` if given, else torchvision's API).
        pretrain_path: local path or URL of a torchvision-format ResNet state_dict.
    """

    @configurable
    def __init__(self, *, depth: int = 50, last_stride: int = 2, pretrained: bool = False, pretrain_path: str = ""):
        super().__init__()
        if depth not in _TORCHVISION:
            raise ConfigError(f"MODEL.BACKBONE.DEPTH: expected one of {sorted(_TORCHVISION)}, got {depth}")
        if last_stride not in (1, 2):
            raise ConfigError(f"MODEL.BACKBONE.LAST_STRIDE: expected 1 or 2, got {last_stride}")
        self.depth = depth
        net = _TorchvisionLayout(depth)
        if pretrained:
            _load_imagenet_weights(net, depth, pretrain_path)
        if last_stride == 1:
            block = net.layer4[0]
            block_conv = block.conv2 if hasattr(block, "conv3") else block.conv1
            block_conv.stride = (1, 1)
            block.downsample[0].stride = (1, 1)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.res2, self.res3, self.res4, self.res5 = net.layer1, net.layer2, net.layer3, net.layer4
        channels = [64, 64, 128, 256, 512] if depth < 50 else [64, 256, 512, 1024, 2048]
        strides = [4, 4, 8, 16, 32 if last_stride == 2 else 16]
        self._shapes = {n: ShapeSpec(c, s) for n, c, s in zip(_STAGES, channels, strides)}

    def describe(self) -> str:
        return f"ResNet-{self.depth}"

    @classmethod
    def from_config(cls, cfg):
        b = cfg.MODEL.BACKBONE
        return {"depth": b.DEPTH, "last_stride": b.LAST_STRIDE, "pretrained": b.PRETRAIN, "pretrain_path": b.PRETRAIN_PATH}

    def forward(self, x):
        outputs = OrderedDict()
        for name in _STAGES:
            x = getattr(self, name)(x)
            outputs[name] = x
        return outputs

    def output_shape(self):
        return dict(self._shapes)

    def stage_modules(self):
        return OrderedDict((name, getattr(self, name)) for name in _STAGES)


def _load_imagenet_weights(net: nn.Module, depth: int, pretrain_path: str) -> None:
    if pretrain_path:
        try:
            with PathManager.open(pretrain_path, "rb") as f:
                state_dict = torch.load(f, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise UserError(f"MODEL.BACKBONE.PRETRAIN_PATH: file not found: {pretrain_path}") from None
        except Exception as e:
            raise UserError(f"MODEL.BACKBONE.PRETRAIN_PATH: cannot read {pretrain_path}: {type(e).__name__}: {e}".splitlines()[0]) from None
        source = pretrain_path
    else:
        import torchvision  # only here: its import is slow (see the module docstring)

        weights = getattr(torchvision.models, _TORCHVISION[depth][0]).IMAGENET1K_V1
        try:
            state_dict = weights.get_state_dict(progress=False)
        except Exception as e:
            raise UserError(
                f"cannot fetch ImageNet weights for resnet{depth} from {weights.url} ({type(e).__name__}); "
                "download the file elsewhere and set MODEL.BACKBONE.PRETRAIN_PATH, or set MODEL.BACKBONE.PRETRAIN False"
            ) from None
        source = weights.url
    state_dict = state_dict.get("state_dict", state_dict) if isinstance(state_dict, dict) else state_dict
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items() if not k.startswith("fc.")}
    model_state = net.state_dict()
    mismatched = [k for k, v in state_dict.items() if k in model_state and model_state[k].shape != v.shape]
    if mismatched:
        raise UserError(
            f"{source}: shapes do not match resnet{depth} for {len(mismatched)} tensors, e.g. {mismatched[0]}: "
            f"{tuple(state_dict[mismatched[0]].shape)} vs {tuple(model_state[mismatched[0]].shape)}"
        )
    incompatible = net.load_state_dict(state_dict, strict=False)
    missing = [k for k in incompatible.missing_keys if not k.startswith("fc.")]
    if missing:
        logger.warning(f"ImageNet weights {source} lack {len(missing)} keys: {missing[:5]}")
    if incompatible.unexpected_keys:
        logger.warning(f"ImageNet weights {source} have unexpected keys: {incompatible.unexpected_keys[:5]}")
    logger.info(f"Loaded ImageNet weights for resnet{depth} from {source}")


@BACKBONE_REGISTRY.register()
def build_daaf_resnet_backbone(cfg) -> ResNet:
    """The project's ResNet (torchvision weights, LAST_STRIDE); detectron2's own ResNet is
    ``build_detectron2_backbone`` with D2_NAME build_resnet_backbone."""
    return ResNet(cfg)


# The project's ResNet was registered as "build_resnet_backbone", which is also the name of
# detectron2's: configs that still say it get this one, with a deprecation line.
BACKBONE_REGISTRY.register_deprecated_alias("build_resnet_backbone", "build_daaf_resnet_backbone")
