"""Models: registries for meta-architectures, backbones, heads, losses and attention branches."""

from .attention import ATTENTION_BRANCH_REGISTRY, build_attention_branches
from .backbones import BACKBONE_REGISTRY, Backbone, ShapeSpec, build_backbone
from .flop_count import count_flops, register_flop_handle
from .heads import REID_HEADS_REGISTRY, build_heads
from .losses import LOSS_REGISTRY, build_losses
from .meta_arch import META_ARCH_REGISTRY, ReIDNetwork, build_model, count_parameters, model_input_fields, strip_branches
