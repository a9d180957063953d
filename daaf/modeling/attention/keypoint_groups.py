"""Groupings of the 17 COCO keypoints for the Part Attention Branch, by name."""

from typing import List, Sequence

from daaf.data.person_labels import COCO_KEYPOINT_NAMES
from daaf.utils.errors import ConfigError

__all__ = ["KEYPOINT_GROUP_SCHEMES", "resolve_keypoint_groups", "keypoint_group_name"]

# COCO order: 0 nose, 1-2 eyes, 3-4 ears, 5-6 shoulders, 7-8 elbows, 9-10 wrists, 11-12 hips,
# 13-14 knees, 15-16 ankles. "coco6" is the grouping of the released DAAF code (used in the
# paper); the paper's 4- and 7-group sets (Fig. 4) are not given in text: these are ours.
KEYPOINT_GROUP_SCHEMES = {
    "coco1": [list(range(17))],
    "coco4": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10], [11, 12, 13, 14], [15, 16]],  # head, arms, hips+knees, feet
    "coco6": [[0, 1, 2, 3, 4], [5, 6], [7, 8], [9, 10, 11, 12], [13, 14], [15, 16]],
    "coco7": [
        [0, 1, 2, 3, 4],
        [5, 6],
        [7, 8],
        [9, 10],
        [11, 12],
        [13, 14],
        [15, 16],
    ],  # head, shoulders, elbows, wrists, hips, knees, ankles
    "coco17": [[k] for k in range(17)],
}


# Body parts by their COCO keypoint ids, for naming a group of keypoints.
_BODY_PARTS = [
    ("head", (0, 1, 2, 3, 4)),
    ("shoulders", (5, 6)),
    ("elbows", (7, 8)),
    ("wrists", (9, 10)),
    ("hips", (11, 12)),
    ("knees", (13, 14)),
    ("ankles", (15, 16)),
]


def keypoint_group_name(keypoints: Sequence[int]) -> str:
    """A person's name for a group of COCO keypoint ids: the body parts it holds whole, then its
    other keypoints by their COCO names, joined by "+" (e.g. [9, 10, 11, 12] -> "wrists+hips",
    [0] -> "nose"); "all keypoints" for all 17."""
    ids = set(keypoints)
    if ids == set(range(17)):
        return "all keypoints"
    names = []
    for name, part in _BODY_PARTS:
        if ids.issuperset(part):
            names.append(name)
            ids -= set(part)
    return "+".join(names + [COCO_KEYPOINT_NAMES[k] for k in sorted(ids)])


def resolve_keypoint_groups(scheme: str, custom: Sequence[Sequence[int]] = (), num_channels: int = None) -> List[List[int]]:
    """The keypoint groups of MODEL.DAAF.PAB.GROUPS (a scheme name) or GROUP_LIST (explicit lists).

    Every keypoint id must be in 0..16 and appear at most once, no group may be empty, and
    there cannot be more groups than ``num_channels``.
    """
    if custom:
        groups, key = [list(g) for g in custom], "MODEL.DAAF.PAB.GROUP_LIST"
    elif scheme in KEYPOINT_GROUP_SCHEMES:
        groups, key = KEYPOINT_GROUP_SCHEMES[scheme], "MODEL.DAAF.PAB.GROUPS"
    else:
        raise ConfigError(
            f"MODEL.DAAF.PAB.GROUPS: unknown scheme '{scheme}'; known: {', '.join(KEYPOINT_GROUP_SCHEMES)} (or set GROUP_LIST)"
        )
    flat = [k for g in groups for k in g]
    if any(len(g) == 0 for g in groups):
        raise ConfigError(f"{key}: empty group in {groups}")
    bad = [k for k in flat if not isinstance(k, int) or not 0 <= k < 17]
    if bad:
        raise ConfigError(f"{key}: keypoint ids must be integers in 0..16, got {bad}")
    repeated = sorted({k for k in flat if flat.count(k) > 1})
    if repeated:
        raise ConfigError(f"{key}: keypoints {repeated} appear in more than one group")
    if num_channels is not None and len(groups) > num_channels:
        raise ConfigError(f"{key}: {len(groups)} groups but the feature map has only {num_channels} channels")
    return groups
