"""META_ARCH_REGISTRY and build_model."""

import torch

from daaf.utils.env import resolve_device
from daaf.utils.registry import Registry, get_from_registry

META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = """
Whole models by MODEL.META_ARCHITECTURE: ``cls(cfg)`` -> nn.Module. In training,
forward(batch: ReIDBatch) returns a dict of named scalar losses; in eval, the embeddings (B, D).
A classmethod ``input_fields(cfg)`` names the batch fields it trains on beyond images, pids and
camids (``daaf.data.PersonLabels.FIELDS``: "masks", "keypoints"); the loader serves those.
"""


def build_model(cfg) -> torch.nn.Module:
    """Build MODEL.META_ARCHITECTURE and move it to MODEL.DEVICE. Weights are not loaded here."""
    device = resolve_device(cfg.MODEL.DEVICE, "MODEL.DEVICE")
    model = get_from_registry(META_ARCH_REGISTRY, cfg.MODEL.META_ARCHITECTURE, "MODEL.META_ARCHITECTURE")(cfg)
    model.to(device)
    return model


def model_input_fields(cfg) -> frozenset:
    """The batch fields the model of ``cfg`` trains on beyond images, pids and camids (e.g.
    {"masks", "keypoints"} for DAAF with HAB + PAB; empty for a baseline): what the training
    loader must read from the person-label files. Asked of the class, before any model is built."""
    meta_arch = get_from_registry(META_ARCH_REGISTRY, cfg.MODEL.META_ARCHITECTURE, "MODEL.META_ARCHITECTURE")
    input_fields = getattr(meta_arch, "input_fields", None)
    return frozenset(input_fields(cfg)) if input_fields is not None else frozenset()
