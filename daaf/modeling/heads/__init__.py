from .bnneck import BNNeckHead
from .build import REID_HEADS_REGISTRY, build_heads
from .trinet import TriNetHead
