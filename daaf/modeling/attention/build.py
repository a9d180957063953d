"""ATTENTION_BRANCH_REGISTRY: DAAF's training-only branches (HAB, PAB) selected by MODEL.DAAF.BRANCHES,
and what a branch may offer the tools beyond its loss (:class:`ChannelGroup`, :class:`KeypointHeatmaps`)."""

from typing import List, NamedTuple

import torch
from torch import nn

from daaf.data.batch import PersonLabels
from daaf.utils.errors import ConfigError
from daaf.utils.registry import Registry, get_from_registry

ATTENTION_BRANCH_REGISTRY = Registry("ATTENTION_BRANCH")
ATTENTION_BRANCH_REGISTRY.__doc__ = """
Training-only attention branches, named in MODEL.DAAF.BRANCHES.

What a branch must be: ``cls(cfg, backbone)`` -> nn.Module with
``forward(features: {stage: (B, C, h, w)}, batch: ReIDBatch) -> {loss name: scalar tensor}``, the
features being the backbone's stages. Branches run only in training; the inference network never
calls them and drops their parameters (``ReIDNetwork.inference_network``).

What it may offer (each optional; the tools ask for it through the network, never by the branch's name):
- classmethod ``input_fields(cfg) -> set``: the batch fields it trains on beyond images and pids
  ("masks", "keypoints"); a branch without it is given both.
- ``predict(features) -> (B, n, h, w) tensor or a list of them``: what it predicts, drawn by the
  attention tool (``--branches``).
- ``channel_groups() -> List[ChannelGroup]``: channels of a backbone stage it trains to stand for
  one part each (the attention tool draws one partial map per group).
- ``keypoint_heatmaps(features) -> List[KeypointHeatmaps]``: heatmaps of COCO keypoints (PCK).
"""


class ChannelGroup(NamedTuple):
    """Channels ``channels`` of backbone stage ``stage`` that a branch trains to stand for the part ``name``."""

    name: str
    stage: str
    channels: slice


class KeypointHeatmaps(NamedTuple):
    """A branch's heatmaps (B, len(keypoints), h, w) of the COCO keypoint ids ``keypoints``, for the
    part ``name``."""

    name: str
    keypoints: List[int]
    heatmaps: torch.Tensor


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
        fields |= set(input_fields(cfg)) if input_fields is not None else PersonLabels.FIELDS
    return frozenset(fields)
