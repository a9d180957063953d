"""REID_HEADS_REGISTRY: the part after the backbone that turns the last feature map into an embedding."""

from daaf.utils.registry import Registry, get_from_registry

REID_HEADS_REGISTRY = Registry("REID_HEADS")
REID_HEADS_REGISTRY.__doc__ = """
Heads by MODEL.HEADS.NAME: ``cls(cfg, input_shape: ShapeSpec)`` -> nn.Module.
forward(feature map (B, C, h, w)) returns, in training, a dict with "features" (B, D) for metric
losses and optionally "logits" (B, num_classes); in eval, the test embedding (B, D).
A head sets ``self.feature_dim`` (= D of "features").
"""


def build_heads(cfg, input_shape):
    """Build MODEL.HEADS.NAME for a feature map of ``input_shape`` (ShapeSpec)."""
    return get_from_registry(REID_HEADS_REGISTRY, cfg.MODEL.HEADS.NAME, "MODEL.HEADS.NAME")(cfg, input_shape)
