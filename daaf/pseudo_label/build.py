"""PSEUDO_LABELER_REGISTRY and the labeler interface every registered labeler follows."""

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from daaf.utils.registry import Registry, get_from_registry

__all__ = ["PSEUDO_LABELER_REGISTRY", "PersonLabel", "PersonLabeler", "build_pseudo_labeler"]

PSEUDO_LABELER_REGISTRY = Registry("PSEUDO_LABELER")
PSEUDO_LABELER_REGISTRY.__doc__ = """
Person labelers by name (PSEUDO_LABEL.NAME). ``cls(cfg)`` returns a :class:`PersonLabeler`: called
with a list of RGB uint8 crops it returns, per crop, THE person of the crop or None.
"""


@dataclass
class PersonLabel:
    """The person of one crop, in the crop's pixels.

    mask: (H, W) uint8 0/1. keypoints: (17, 3) [x, y, v] in COCO order, v = 2 when the
    keypoint's score passes the labeler's threshold, else 0. keypoint_scores: (17,) raw scores.
    box: [x0, y0, x1, y1] of the detection. score: detection score.
    """

    mask: np.ndarray
    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    box: np.ndarray
    score: float


class PersonLabeler:
    """Base class of labelers. Subclasses implement :meth:`__call__` and may set ``weights`` (what
    the label file's info block records) and :meth:`info` (their settings)."""

    weights: Optional[str] = None

    def __call__(self, images: List[np.ndarray]) -> List[Optional[PersonLabel]]:
        """``images``: RGB uint8 (H, W, 3) crops, sizes may differ. Returns one entry per crop."""
        raise NotImplementedError

    def info(self) -> dict:
        """The labeler's settings, recorded in each label file's ``labeler_config``."""
        return {}


def build_pseudo_labeler(cfg) -> PersonLabeler:
    """The labeler named by PSEUDO_LABEL.NAME, built from the config."""
    return get_from_registry(PSEUDO_LABELER_REGISTRY, cfg.PSEUDO_LABEL.NAME, "PSEUDO_LABEL.NAME")(cfg)
