"""META_ARCH_REGISTRY and build_model."""

import torch

from daaf.utils.env import resolve_device
from daaf.utils.registry import Registry, get_from_registry

META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = """
Whole models by MODEL.META_ARCHITECTURE: ``cls(cfg)`` -> nn.Module. In training, forward(batch)
returns a dict of named scalar losses; in eval, the embeddings (B, D).
"""


def build_model(cfg) -> torch.nn.Module:
    """Build MODEL.META_ARCHITECTURE and move it to MODEL.DEVICE. Weights are not loaded here."""
    device = resolve_device(cfg.MODEL.DEVICE, "MODEL.DEVICE")
    model = get_from_registry(META_ARCH_REGISTRY, cfg.MODEL.META_ARCHITECTURE, "MODEL.META_ARCHITECTURE")(cfg)
    model.to(device)
    return model
