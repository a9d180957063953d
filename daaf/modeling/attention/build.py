"""ATTENTION_BRANCH_REGISTRY: DAAF's training-only branches (HAB, PAB) selected by MODEL.DAAF.BRANCHES."""

from torch import nn

from daaf.utils.registry import Registry, get_from_registry

ATTENTION_BRANCH_REGISTRY = Registry("ATTENTION_BRANCH")
ATTENTION_BRANCH_REGISTRY.__doc__ = """
Training-only attention branches: ``cls(cfg, backbone)`` -> nn.Module whose
``forward(features: {stage: tensor}, batch: dict) -> {loss name: scalar}``. They run only in
training; the inference network never calls them, and ``strip_branches`` removes them.
"""


def build_attention_branches(cfg, backbone) -> nn.ModuleDict:
    """One branch per name of MODEL.DAAF.BRANCHES (each name at most once)."""
    names = list(cfg.MODEL.DAAF.BRANCHES)
    if len(set(names)) != len(names):
        from daaf.utils.errors import ConfigError

        raise ConfigError(f"MODEL.DAAF.BRANCHES: each branch at most once, got {names}")
    return nn.ModuleDict(
        {name: get_from_registry(ATTENTION_BRANCH_REGISTRY, name, "MODEL.DAAF.BRANCHES")(cfg, backbone) for name in names}
    )
