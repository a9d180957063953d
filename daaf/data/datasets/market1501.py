"""Market-1501 (Zheng et al., ICCV 2015)."""

import re

from .bases import DATASET_REGISTRY, BoundingBoxDataset

__all__ = ["Market1501"]


@DATASET_REGISTRY.register()
class Market1501(BoundingBoxDataset):
    """Market-1501: pid -1 (junk) dropped, pid 0 (distractors) kept in the gallery as negatives."""

    dataset_dirs = ("Market-1501-v15.09.15", "Market-1501", "market1501")
    pattern = re.compile(r"^(-?\d+)_c(\d)s\d+_\d+_\d+")
    layout_hint = "<root>/Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test}/0001_c1s1_000151_01.jpg"
