from .branches import HumanAttentionBranch, PartAttentionBranch, copy_stages_after
from .build import ATTENTION_BRANCH_REGISTRY, ChannelGroup, KeypointHeatmaps, attention_branch_input_fields, build_attention_branches
from .config import add_daaf_config
from .decoder import Decoder, Predictor
from .keypoint_groups import KEYPOINT_GROUP_SCHEMES, keypoint_group_name, resolve_keypoint_groups
from .targets import keypoint_heatmaps, part_image_targets, resize_masks
