"""LOSS_REGISTRY: ReID losses on the head's outputs, selected by MODEL.LOSSES.NAME."""

from daaf.utils.registry import Registry, get_from_registry

LOSS_REGISTRY = Registry("LOSS")
LOSS_REGISTRY.__doc__ = """
Losses by name (MODEL.LOSSES.NAME list): ``cls(cfg, feature_dim=D)`` -> nn.Module with attribute ``name`` (the
key in the loss dict, e.g. "loss_triplet") and ``forward(head_outputs: dict, pids (B,)) -> scalar``
already multiplied by its weight.
"""


def build_losses(cfg, feature_dim: int) -> list:
    """One module per entry of MODEL.LOSSES.NAME; ``feature_dim``: size of the head's "features"."""
    names = list(cfg.MODEL.LOSSES.NAME)
    return [get_from_registry(LOSS_REGISTRY, name, "MODEL.LOSSES.NAME")(cfg, feature_dim=feature_dim) for name in names]
