"""Training hooks: timing, LR scheduling, checkpointing, writing, evaluation and precise BN.

The design follows detectron2's ``detectron2.engine.hooks`` (same hook names and call points)."""

import datetime
import itertools
import logging
import time

import torch
from fvcore.common.checkpoint import PeriodicCheckpointer as _PeriodicCheckpointer
from fvcore.common.timer import Timer

from daaf.utils import comm
from daaf.utils.fvcore_compat import get_bn_modules, update_bn_stats

from .train_loop import HookBase

__all__ = [
    "IterationTimer",
    "PeriodicWriter",
    "PeriodicCheckpointer",
    "LRScheduler",
    "EvalHook",
    "PreciseBN",
]


class IterationTimer(HookBase):
    """Put each iteration's time into the storage as ``time``; log a summary at the end.

    The first ``warmup_iter`` iterations are left out of the summary (they include start-up).
    """

    def __init__(self, warmup_iter: int = 3):
        self._warmup_iter = warmup_iter
        self._step_timer = Timer()
        self._start_time = time.perf_counter()
        self._total_timer = Timer()

    def before_train(self):
        self._start_time = time.perf_counter()
        self._total_timer.reset()
        self._total_timer.pause()

    def after_train(self):
        logger = logging.getLogger(__name__)
        total_time = time.perf_counter() - self._start_time
        total_time_minus_hooks = self._total_timer.seconds()
        hook_time = total_time - total_time_minus_hooks
        num_iter = self.trainer.storage.iter + 1 - self.trainer.start_iter - self._warmup_iter
        if num_iter > 0 and total_time_minus_hooks > 0:
            logger.info(
                f"{num_iter} steps took {datetime.timedelta(seconds=int(total_time_minus_hooks))} "
                f"({total_time_minus_hooks / num_iter:.4f} s a step, hooks and warm-up not counted)"
            )
        self.trainer.storage.put_scalar("train_time_s", total_time, smoothing_hint=False)
        logger.info(
            f"Training took {datetime.timedelta(seconds=int(total_time))} in all, {datetime.timedelta(seconds=int(hook_time))} of it in hooks"
        )

    def before_step(self):
        self._step_timer.reset()
        self._total_timer.resume()

    def after_step(self):
        iter_done = self.trainer.storage.iter - self.trainer.start_iter + 1
        if iter_done >= self._warmup_iter:
            self.trainer.storage.put_scalars(time=self._step_timer.seconds())
        else:
            self._start_time = time.perf_counter()
            self._total_timer.reset()
        self._total_timer.pause()


class PeriodicWriter(HookBase):
    """Call every writer's ``write()`` every ``period`` iterations and at the end."""

    def __init__(self, writers, period: int = 20):
        self._writers = writers
        self._period = period

    def after_step(self):
        if (self.trainer.iter + 1) % self._period == 0 or self.trainer.iter == self.trainer.max_iter - 1:
            for writer in self._writers:
                writer.write()

    def after_train(self):
        for writer in self._writers:
            writer.write()
            writer.close()


class PeriodicCheckpointer(_PeriodicCheckpointer, HookBase):
    """fvcore's PeriodicCheckpointer as a hook: saves every ``period`` iterations and at the end.

    Only rank 0 writes. Saved extra data includes the trainer's state (iteration, optimizer).
    """

    def before_train(self):
        self.max_iter = self.trainer.max_iter

    def after_step(self):
        if comm.is_main_process():
            self.step(self.trainer.iter)

    def step(self, iteration: int, **kwargs) -> None:
        """As fvcore's, except that the last iteration is saved once, as ``model_final``: fvcore
        also writes ``model_{iteration}`` there when the period divides MAX_ITER, a byte copy."""
        if self.max_iter is not None and int(iteration) >= self.max_iter - 1:
            self.checkpointer.save(f"{self.file_prefix}_final", iteration=int(iteration), **kwargs)
            return
        super().step(iteration, **kwargs)


class LRScheduler(HookBase):
    """Put the learning rate into the storage and step the scheduler after every iteration."""

    def __init__(self, optimizer=None, scheduler=None):
        self._optimizer = optimizer
        self._scheduler = scheduler

    @property
    def optimizer(self):
        return self._optimizer or self.trainer.optimizer

    @property
    def scheduler(self):
        return self._scheduler or self.trainer.scheduler

    def before_train(self):
        # The group with the most parameters carries the "main" learning rate.
        groups = self.optimizer.param_groups
        self._best_param_group_id = max(range(len(groups)), key=lambda i: len(groups[i]["params"]))

    def after_step(self):
        lr = self.optimizer.param_groups[self._best_param_group_id]["lr"]
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        self.scheduler.step()

    def state_dict(self):
        return self.scheduler.state_dict()

    def load_state_dict(self, state_dict):
        self.scheduler.load_state_dict(state_dict)


class EvalHook(HookBase):
    """Run ``eval_function()`` every ``eval_period`` iterations and after the last one.

    ``eval_function`` returns a flat or nested dict of floats; they are put into the storage.
    """

    def __init__(self, eval_period: int, eval_function, eval_after_train: bool = True):
        self._period = eval_period
        self._func = eval_function
        self._eval_after_train = eval_after_train

    def _do_eval(self):
        results = self._func()
        if results:
            flat = _flatten_results_dict(results)
            for k, v in flat.items():
                try:
                    float(v)
                except (TypeError, ValueError) as e:
                    raise ValueError(
                        f"EvalHook: the evaluation returned {k} = {v!r}, not a number (it must return a dict of floats)"
                    ) from e
            self.trainer.storage.put_scalars(**flat, smoothing_hint=False)
        comm.synchronize()

    def after_step(self):
        next_iter = self.trainer.iter + 1
        if self._period > 0 and next_iter % self._period == 0 and next_iter != self.trainer.max_iter:
            self._do_eval()

    def after_train(self):
        if self._eval_after_train and self.trainer.iter + 1 >= self.trainer.max_iter:
            self._do_eval()
        del self._func


def _flatten_results_dict(results: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in results.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten_results_dict(v, key + "/"))
        else:
            flat[key] = v
    return flat


class PreciseBN(HookBase):
    """Recompute BatchNorm running statistics on ``num_iter`` training batches (fvcore precise BN)
    every ``period`` iterations and at the end of training."""

    def __init__(self, period: int, model, data_loader, num_iter: int):
        self._logger = logging.getLogger(__name__)
        if len(get_bn_modules(model)) == 0:
            self._logger.info("PreciseBN is disabled because model does not contain BN layers in training mode.")
            self._disabled = True
            return
        self._model = model
        self._data_loader = data_loader
        self._num_iter = num_iter
        self._period = period
        self._disabled = False
        self._data_iter = None

    def after_step(self):
        next_iter = self.trainer.iter + 1
        is_final = next_iter == self.trainer.max_iter
        if is_final or (self._period > 0 and next_iter % self._period == 0):
            self.update_stats()

    def update_stats(self):
        if self._disabled:
            return
        batch_sampler = getattr(self._data_loader, "batch_sampler", None)
        training_stream = getattr(getattr(self.trainer, "data_loader", None), "batch_sampler", None)
        if hasattr(batch_sampler, "resume") and hasattr(training_stream, "state_dict"):
            # the batches the training stream has at this iteration: the same after a resume
            batch_sampler.resume(training_stream.state_dict(), start_batch=self.trainer.iter + 1)
            self._data_iter = iter(self._data_loader)
        elif self._data_iter is None:
            self._data_iter = iter(self._data_loader)

        def data_loader():
            for num_iter in itertools.count(1):
                if num_iter % 100 == 0:
                    self._logger.info(f"Running precise-BN ... {num_iter}/{self._num_iter} iterations.")
                yield next(self._data_iter)

        with torch.no_grad():
            self._logger.info(f"Running precise-BN for {self._num_iter} iterations...")
            update_bn_stats(self._model, data_loader(), self._num_iter)
