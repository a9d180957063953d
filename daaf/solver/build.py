"""Optimizer, LR scheduler and gradient clipping built from SOLVER.* through registries."""

from typing import Any, Dict, List

import torch
from fvcore.common.param_scheduler import ConstantParamScheduler, CosineParamScheduler, MultiStepParamScheduler

from daaf.utils.errors import ConfigError
from daaf.utils.registry import Registry, get_from_registry

from .lr_scheduler import ExponentialDecayParamScheduler, LRMultiplier, WarmupParamScheduler

OPTIMIZER_REGISTRY = Registry("OPTIMIZER")
OPTIMIZER_REGISTRY.__doc__ = "Optimizers by SOLVER.OPTIMIZER_NAME: fn(param_groups, cfg) -> torch.optim.Optimizer."

LR_SCHEDULER_REGISTRY = Registry("LR_SCHEDULER")
LR_SCHEDULER_REGISTRY.__doc__ = (
    "LR schedules by SOLVER.LR_SCHEDULER_NAME: fn(cfg) -> fvcore ParamScheduler over [0, 1) of training "
    "(warm-up is added around it from SOLVER.WARMUP_*)."
)

_NORM_TYPES = (
    torch.nn.BatchNorm1d,
    torch.nn.BatchNorm2d,
    torch.nn.BatchNorm3d,
    torch.nn.SyncBatchNorm,
    torch.nn.GroupNorm,
    torch.nn.InstanceNorm2d,
    torch.nn.LayerNorm,
)


def get_default_optimizer_params(
    model: torch.nn.Module,
    base_lr: float,
    weight_decay: float,
    bias_lr_factor: float = 1.0,
    weight_decay_bias: float = None,
    overrides: Dict[str, Dict[str, float]] = None,
) -> List[Dict[str, Any]]:
    """One param group per parameter with its lr / weight decay (biases may get their own).

    ``overrides``: parameter-name suffix -> {"lr": ..., "weight_decay": ...}.
    Parameters with ``requires_grad=False`` are skipped; shared parameters appear once.
    """
    weight_decay_bias = weight_decay if weight_decay_bias is None else weight_decay_bias
    params, seen = [], set()
    for name, value in model.named_parameters():
        if not value.requires_grad or value in seen:
            continue
        seen.add(value)
        hyper = {"lr": base_lr, "weight_decay": weight_decay}
        if name.endswith("bias"):
            hyper = {"lr": base_lr * bias_lr_factor, "weight_decay": weight_decay_bias}
        for suffix, values in (overrides or {}).items():
            if name.endswith(suffix):
                hyper.update(values)
        params.append({"params": [value], **hyper})
    return _merge_groups(params)


def _merge_groups(groups: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Merge groups with identical hyper-parameters (fewer groups: faster optimizer steps)."""
    merged: Dict[tuple, Dict[str, Any]] = {}
    for group in groups:
        key = tuple(sorted((k, v) for k, v in group.items() if k != "params"))
        merged.setdefault(key, {**{k: v for k, v in group.items() if k != "params"}, "params": []})
        merged[key]["params"].extend(group["params"])
    return list(merged.values())


@OPTIMIZER_REGISTRY.register()
def Adam(param_groups, cfg):
    return torch.optim.Adam(param_groups, lr=cfg.SOLVER.BASE_LR, betas=tuple(cfg.SOLVER.ADAM_BETAS), eps=cfg.SOLVER.ADAM_EPS)


@OPTIMIZER_REGISTRY.register()
def AdamW(param_groups, cfg):
    return torch.optim.AdamW(param_groups, lr=cfg.SOLVER.BASE_LR, betas=tuple(cfg.SOLVER.ADAM_BETAS), eps=cfg.SOLVER.ADAM_EPS)


@OPTIMIZER_REGISTRY.register()
def SGD(param_groups, cfg):
    return torch.optim.SGD(param_groups, lr=cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV)


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer SOLVER.OPTIMIZER_NAME over ``model``'s trainable parameters (biases with
    SOLVER.BIAS_LR_FACTOR and SOLVER.WEIGHT_DECAY_BIAS). Center loss's centres are no parameters:
    they follow their own SGD rule (SOLVER.CENTER_LR) inside the loss."""
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    return get_from_registry(OPTIMIZER_REGISTRY, cfg.SOLVER.OPTIMIZER_NAME, "SOLVER.OPTIMIZER_NAME")(params, cfg)


@LR_SCHEDULER_REGISTRY.register()
def WarmupMultiStepLR(cfg):
    steps = [x for x in cfg.SOLVER.STEPS if x <= cfg.SOLVER.MAX_ITER]
    if not steps:
        return ConstantParamScheduler(1.0)
    if list(steps) != sorted(steps):
        raise ConfigError(f"SOLVER.STEPS must be increasing, got {list(cfg.SOLVER.STEPS)}")
    return MultiStepParamScheduler(
        values=[cfg.SOLVER.GAMMA**k for k in range(len(steps) + 1)],
        milestones=list(steps),
        num_updates=cfg.SOLVER.MAX_ITER,
    )


@LR_SCHEDULER_REGISTRY.register()
def WarmupCosineLR(cfg):
    return CosineParamScheduler(1.0, 0.0)


@LR_SCHEDULER_REGISTRY.register()
def ExponentialDecayLR(cfg):
    s = cfg.SOLVER
    if not 0 <= s.DECAY_START < s.MAX_ITER:
        raise ConfigError(f"SOLVER.DECAY_START ({s.DECAY_START}) must be in [0, SOLVER.MAX_ITER ({s.MAX_ITER})) for ExponentialDecayLR")
    if s.DECAY_FACTOR <= 0:
        raise ConfigError(f"SOLVER.DECAY_FACTOR must be > 0, got {s.DECAY_FACTOR}")
    return ExponentialDecayParamScheduler(s.DECAY_START / s.MAX_ITER, s.DECAY_FACTOR)


def build_lr_scheduler(cfg, optimizer) -> LRMultiplier:
    """SOLVER.LR_SCHEDULER_NAME with SOLVER.WARMUP_* warm-up, stepped once per iteration."""
    schedule = get_from_registry(LR_SCHEDULER_REGISTRY, cfg.SOLVER.LR_SCHEDULER_NAME, "SOLVER.LR_SCHEDULER_NAME")(cfg)
    if cfg.SOLVER.WARMUP_ITERS > 0:
        schedule = WarmupParamScheduler(
            schedule,
            cfg.SOLVER.WARMUP_FACTOR,
            min(cfg.SOLVER.WARMUP_ITERS / cfg.SOLVER.MAX_ITER, 1.0),
            cfg.SOLVER.WARMUP_METHOD,
        )
    return LRMultiplier(optimizer, multiplier=schedule, max_iter=cfg.SOLVER.MAX_ITER)


def build_grad_clipper(cfg):
    """A function clipping gradients of an iterable of parameters, or None when disabled."""
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not clip.ENABLED:
        return None
    if clip.CLIP_TYPE == "norm":
        return lambda params: torch.nn.utils.clip_grad_norm_(params, clip.CLIP_VALUE, clip.NORM_TYPE)
    if clip.CLIP_TYPE == "value":
        return lambda params: torch.nn.utils.clip_grad_value_(params, clip.CLIP_VALUE)
    raise ConfigError(f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE: expected 'norm' or 'value', got '{clip.CLIP_TYPE}'")
