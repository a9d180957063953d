"""DAAF's config keys (``MODEL.DAAF.*``): which training-only attention branches a network has, and
the settings of HAB, PAB and their decoder. Added to every config by :func:`add_daaf_config`, a
config extension (:mod:`daaf.config.extensions`), as a third-party branch adds its own keys."""

from daaf.config import CfgNode as CN
from daaf.config import config_extension
from daaf.config.checks import OneOf, Range, declare_value_checks

from .keypoint_groups import KEYPOINT_GROUP_SCHEMES

__all__ = ["add_daaf_config"]


@config_extension
def add_daaf_config(cfg) -> None:
    """Add ``MODEL.DAAF`` (BRANCHES, HAB, PAB, DECODER) with the paper's settings to ``cfg``."""
    # DAAF's training-only attention branches (ATTENTION_BRANCH_REGISTRY names, e.g. ["HAB", "PAB"]).
    cfg.MODEL.DAAF = CN()
    cfg.MODEL.DAAF.BRANCHES = []

    cfg.MODEL.DAAF.HAB = CN()
    cfg.MODEL.DAAF.HAB.SOURCE = "res2"
    # "copy": a separate copy of the backbone stages after SOURCE (released PyTorch code);
    # "shared": the backbone's own final map (released TensorFlow TriNet code).
    cfg.MODEL.DAAF.HAB.ENCODER = "copy"
    cfg.MODEL.DAAF.HAB.LOSS_WEIGHT = 0.003
    cfg.MODEL.DAAF.HAB.LOSS_REDUCTION = "sum"  # "sum" over pixels (paper Eq. 2) or "mean" (released code)

    cfg.MODEL.DAAF.PAB = CN()
    cfg.MODEL.DAAF.PAB.SOURCE = "res5"
    # Keypoint grouping by name: coco1, coco4, coco6 (paper), coco7, coco17; or explicit lists in
    # GROUP_LIST (e.g. [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10], ...]), which then take precedence.
    cfg.MODEL.DAAF.PAB.GROUPS = "coco6"
    cfg.MODEL.DAAF.PAB.GROUP_LIST = []
    cfg.MODEL.DAAF.PAB.SHARED_DECODER = True  # one decoder for all groups (paper); False: one per group
    cfg.MODEL.DAAF.PAB.TARGET = "keypoints"  # or "part_image" (Table 5: horizontal stripes of the image)
    # Gaussian std of the keypoint heatmaps, in INPUT pixels, so that every base network draws the same
    # Gaussian on the image: 4 px is 2 output pixels of TriNet's half-size maps (128x64 for 256x128) and
    # 4 of BoT's full-size ones; about 1/60 of a 256-px crop, a joint's width, as pose heatmaps use
    # (sigma 2 at stride 4 in SimpleBaselines = 8 px on 256-px person crops that fill the frame less).
    cfg.MODEL.DAAF.PAB.SIGMA = 4.0
    cfg.MODEL.DAAF.PAB.LOSS_WEIGHT = 0.003
    cfg.MODEL.DAAF.PAB.LOSS_REDUCTION = "sum"

    cfg.MODEL.DAAF.DECODER = CN()
    cfg.MODEL.DAAF.DECODER.NUM_DECONVS = 4
    cfg.MODEL.DAAF.DECODER.CHANNELS = 64
    cfg.MODEL.DAAF.DECODER.KERNEL_SIZE = 3
    cfg.MODEL.DAAF.DECODER.NORM = "BN"
    cfg.MODEL.DAAF.DECODER.ACTIVATION = "sigmoid"


declare_value_checks(
    {
        "MODEL.DAAF.HAB.ENCODER": OneOf("copy", "shared"),
        "MODEL.DAAF.HAB.LOSS_WEIGHT": Range(0),
        "MODEL.DAAF.HAB.LOSS_REDUCTION": OneOf("sum", "mean"),
        "MODEL.DAAF.PAB.GROUPS": OneOf(*KEYPOINT_GROUP_SCHEMES),
        "MODEL.DAAF.PAB.TARGET": OneOf("keypoints", "part_image"),
        "MODEL.DAAF.PAB.SIGMA": Range(0, low_open=True),
        "MODEL.DAAF.PAB.LOSS_WEIGHT": Range(0),
        "MODEL.DAAF.PAB.LOSS_REDUCTION": OneOf("sum", "mean"),
        "MODEL.DAAF.DECODER.NUM_DECONVS": Range(0, integer=True),
        "MODEL.DAAF.DECODER.CHANNELS": Range(1, integer=True),
        "MODEL.DAAF.DECODER.KERNEL_SIZE": Range(1, integer=True),
        "MODEL.DAAF.DECODER.NORM": OneOf("BN", ""),
        "MODEL.DAAF.DECODER.ACTIVATION": OneOf("sigmoid", ""),
    }
)
