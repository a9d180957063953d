from .build import (
    LR_SCHEDULER_REGISTRY,
    OPTIMIZER_REGISTRY,
    build_grad_clipper,
    build_lr_scheduler,
    build_optimizer,
    get_default_optimizer_params,
)
from .lr_scheduler import ExponentialDecayParamScheduler, LRMultiplier, WarmupParamScheduler
