"""Learning-rate schedules as fvcore ParamSchedulers, driven per iteration by LRMultiplier."""

import math

import torch
from fvcore.common.param_scheduler import CompositeParamScheduler, ConstantParamScheduler, LinearParamScheduler, ParamScheduler

__all__ = ["WarmupParamScheduler", "ExponentialDecayParamScheduler", "LRMultiplier"]


class WarmupParamScheduler(CompositeParamScheduler):
    """Warm-up from ``warmup_factor * scheduler(0)`` during the first ``warmup_length`` (a fraction
    of training), linearly or constantly, then follow ``scheduler`` on the original time axis."""

    def __init__(self, scheduler: ParamScheduler, warmup_factor: float, warmup_length: float, warmup_method: str = "linear"):
        end_value = scheduler(warmup_length)
        start_value = warmup_factor * scheduler(0.0)
        if warmup_method == "constant":
            warmup = ConstantParamScheduler(start_value)
        elif warmup_method == "linear":
            warmup = LinearParamScheduler(start_value, end_value)
        else:
            raise ValueError(f"SOLVER.WARMUP_METHOD: expected 'linear' or 'constant', got '{warmup_method}'")
        super().__init__(
            [warmup, scheduler],
            interval_scaling=["rescaled", "fixed"],
            lengths=[warmup_length, 1 - warmup_length],
        )


class ExponentialDecayParamScheduler(ParamScheduler):
    """1 until ``start`` (fraction of training), then ``end_value ** ((t - start) / (1 - start))``:
    TriNet's schedule, reaching ``end_value`` at the last iteration."""

    def __init__(self, start: float, end_value: float):
        if not 0.0 <= start < 1.0:
            raise ValueError(f"decay start must be in [0, 1) of training, got {start}")
        if end_value <= 0:
            raise ValueError(f"SOLVER.DECAY_FACTOR must be > 0, got {end_value}")
        self._start = start
        self._log_end = math.log(end_value)

    def __call__(self, where: float) -> float:
        if where < self._start:
            return 1.0
        return math.exp(self._log_end * (where - self._start) / (1.0 - self._start))


class LRMultiplier(torch.optim.lr_scheduler.LRScheduler):
    """Per-iteration LR = base LR of each group x ``multiplier(iteration / max_iter)``."""

    def __init__(self, optimizer, multiplier: ParamScheduler, max_iter: int, last_iter: int = -1):
        if not isinstance(multiplier, ParamScheduler):
            raise ValueError(f"LRMultiplier needs an fvcore ParamScheduler, got {multiplier}")
        self._multiplier = multiplier
        self._max_iter = max_iter
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self):
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch}

    def get_lr(self):
        # The hook steps once more after the last iteration; fvcore schedulers only take [0, 1).
        where = min(self.last_epoch / self._max_iter, math.nextafter(1.0, 0.0))
        factor = self._multiplier(where)
        return [base_lr * factor for base_lr in self.base_lrs]
