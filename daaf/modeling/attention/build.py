"""ATTENTION_BRANCH_REGISTRY: DAAF's training-only branches (HAB, PAB) selected by MODEL.DAAF.BRANCHES."""

from torch import nn

from daaf.data.batch import PERSON_LABEL_FIELDS
from daaf.utils.errors import ConfigError
from daaf.utils.registry import Registry, get_from_registry

ATTENTION_BRANCH_REGISTRY = Registry("ATTENTION_BRANCH")
ATTENTION_BRANCH_REGISTRY.__doc__ = """
Training-only attention branches: ``cls(cfg, backbone)`` -> nn.Module whose
``forward(features: {stage: tensor}, batch: ReIDBatch) -> {loss name: scalar}``. They run only in
training; the inference network never calls them, and ``strip_branches`` removes them. A
branch's classmethod ``input_fields(cfg)`` names the batch fields it trains on beyond the images
("masks", "keypoints"); one without it is given both.
"""


def _branch_names(cfg) -> list:
    names = list(cfg.MODEL.DAAF.BRANCHES)
    if len(set(names)) != len(names):
        raise ConfigError(f"MODEL.DAAF.BRANCHES: each branch at most once, got {names}")
    return names


def build_attention_branches(cfg, backbone) -> nn.ModuleDict:
    """One branch per name of MODEL.DAAF.BRANCHES (each name at most once)."""
    return nn.ModuleDict(
        {name: get_from_registry(ATTENTION_BRANCH_REGISTRY, name, "MODEL.DAAF.BRANCHES")(cfg, backbone) for name in _branch_names(cfg)}
    )


def attention_branch_input_fields(cfg) -> frozenset:
    """The batch fields the branches of MODEL.DAAF.BRANCHES train on (see the registry's doc)."""
    fields = set()
    for name in _branch_names(cfg):
        branch = get_from_registry(ATTENTION_BRANCH_REGISTRY, name, "MODEL.DAAF.BRANCHES")
        input_fields = getattr(branch, "input_fields", None)
        fields |= set(input_fields(cfg)) if input_fields is not None else PERSON_LABEL_FIELDS
    return frozenset(fields)
