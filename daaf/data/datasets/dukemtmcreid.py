"""DukeMTMC-reID (Zheng et al., ICCV 2017): Market-1501's folder layout, its own file names."""

import re

from .bases import DATASET_REGISTRY, BoundingBoxDataset

__all__ = ["DukeMTMCreID"]


@DATASET_REGISTRY.register()
class DukeMTMCreID(BoundingBoxDataset):
    """DukeMTMC-reID: 702 training ids; 8 cameras."""

    dataset_dirs = ("DukeMTMC-reID", "dukemtmc-reid", "dukemtmcreid")
    pattern = re.compile(r"^(\d+)_c(\d+)_f?\d+")
    layout_hint = "<root>/DukeMTMC-reID/{bounding_box_train,query,bounding_box_test}/0001_c2_f0046182.jpg"
