from .branches import HumanAttentionBranch, PartAttentionBranch, copy_stages_after
from .build import ATTENTION_BRANCH_REGISTRY, attention_branch_input_fields, build_attention_branches
from .decoder import Decoder, Predictor
from .keypoint_groups import KEYPOINT_GROUP_SCHEMES, resolve_keypoint_groups
from .targets import keypoint_heatmaps, part_image_targets, resize_masks
