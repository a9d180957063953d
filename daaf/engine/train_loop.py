"""The training loop: TrainerBase with hooks, SimpleTrainer and its AMP variant.

The design follows detectron2's ``detectron2.engine.train_loop``: hooks run before and after training
and each step, and a trainer's ``run_step`` does one optimisation step."""

import logging
import time
import weakref
from typing import Dict, List, Optional

import numpy as np
import torch

from daaf.utils import comm
from daaf.utils.errors import UserError, is_full_disk
from daaf.utils.events import EventStorage, get_event_storage

__all__ = ["HookBase", "TrainerBase", "SimpleTrainer", "AMPTrainer"]


class HookBase:
    """Code run around training. Each hook gets ``self.trainer`` (a weak proxy) when registered.

    Order: before_train, then per iteration before_step / after_step, then after_train.
    """

    trainer: "TrainerBase" = None

    def before_train(self):
        pass

    def after_train(self):
        pass

    def before_step(self):
        pass

    def after_backward(self):
        pass

    def after_step(self):
        pass

    def state_dict(self):
        return {}


class TrainerBase:
    """Runs ``run_step()`` from ``start_iter`` to ``max_iter`` inside an EventStorage, calling hooks."""

    def __init__(self) -> None:
        self._hooks: List[HookBase] = []
        self.iter: int = 0
        self.start_iter: int = 0
        self.max_iter: int = 0
        self.storage: Optional[EventStorage] = None

    def register_hooks(self, hooks: List[Optional[HookBase]]) -> None:
        """Append hooks (``None`` entries are skipped); they run in the order registered."""
        hooks = [h for h in hooks if h is not None]
        for h in hooks:
            assert isinstance(h, HookBase), h
            h.trainer = weakref.proxy(self)  # a proxy avoids a trainer <-> hook reference cycle
        self._hooks.extend(hooks)

    def train(self, start_iter: int, max_iter: int) -> None:
        """Train iterations ``start_iter .. max_iter - 1``."""
        logger = logging.getLogger(__name__)
        logger.info(f"Training begins at iteration {start_iter}")
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        with EventStorage(start_iter) as self.storage:
            try:
                self.before_train()
                for self.iter in range(start_iter, max_iter):
                    self.before_step()
                    self.run_step()
                    self.after_step()
                # After a normal exit self.iter == max_iter, so after_train sees the final state.
                self.iter = max_iter
            except Exception as e:
                if isinstance(e, UserError) or is_full_disk(e):
                    # bad input or a full disk: the entry point prints its one line; the traceback
                    # goes to log.txt only
                    logger.debug(f"Training stopped at iteration {self.iter}:", exc_info=True)
                else:
                    logger.exception(f"Training stopped at iteration {self.iter} by an error:")
                raise
            finally:
                self.after_train()

    def before_train(self):
        for h in self._hooks:
            h.before_train()

    def after_train(self):
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_train()

    def before_step(self):
        self.storage.iter = self.iter
        for h in self._hooks:
            h.before_step()

    def after_backward(self):
        for h in self._hooks:
            h.after_backward()

    def after_step(self):
        for h in self._hooks:
            h.after_step()

    def run_step(self):
        raise NotImplementedError

    def state_dict(self) -> dict:
        ret = {"iteration": self.iter}
        hooks_state = {}
        for h in self._hooks:
            sd = h.state_dict()
            if sd:
                hooks_state[type(h).__qualname__] = sd
        if hooks_state:
            ret["hooks"] = hooks_state
        return ret

    def load_state_dict(self, state_dict: dict) -> None:
        self.iter = state_dict["iteration"]
        for key, value in state_dict.get("hooks", {}).items():
            for h in self._hooks:
                if type(h).__qualname__ == key and hasattr(h, "load_state_dict"):
                    h.load_state_dict(value)
                    break


class SimpleTrainer(TrainerBase):
    """One optimisation step per iteration: ``loss_dict = model(batch)``, sum, backward, step.

    The model returns a dict of named scalar losses in training mode. Gradient clipping, if
    given, is a callable applied to the parameters before ``optimizer.step()``.
    """

    def __init__(self, model, data_loader, optimizer, grad_clipper=None):
        super().__init__()
        model.train()
        self.model = model
        self.data_loader = data_loader
        self._data_loader_iter_obj = None
        self.optimizer = optimizer
        self.grad_clipper = grad_clipper

    @property
    def _data_loader_iter(self):
        if self._data_loader_iter_obj is None:
            self._data_loader_iter_obj = iter(self.data_loader)
        return self._data_loader_iter_obj

    def run_step(self):
        assert self.model.training, "[SimpleTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        loss_dict = self.model(data)
        losses = sum(loss_dict.values()) if isinstance(loss_dict, dict) else loss_dict
        if not isinstance(loss_dict, dict):
            loss_dict = {"total_loss": loss_dict}
        self.optimizer.zero_grad(set_to_none=True)
        losses.backward()
        self.after_backward()
        if self.grad_clipper is not None:
            self.grad_clipper(self.model.parameters())
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step()

    def _write_metrics(self, loss_dict: Dict[str, torch.Tensor], data_time: float, prefix: str = "") -> None:
        """Gather losses from all ranks, check they are finite, and put them into the storage."""
        metrics = {k: v.detach().cpu().item() for k, v in loss_dict.items()}
        metrics["data_time"] = data_time
        all_metrics = comm.gather(metrics)
        if comm.is_main_process():
            storage = get_event_storage()
            data_time = np.max([m.pop("data_time") for m in all_metrics])
            storage.put_scalar("data_time", data_time)
            averaged = {k: float(np.mean([m[k] for m in all_metrics])) for k in all_metrics[0]}
            total = sum(averaged.values())
            if not np.isfinite(total):
                terms = ", ".join(f"{k}={v:.6g}" for k, v in averaged.items())
                raise FloatingPointError(f"Loss became non-finite at iteration {self.iter}: {terms}")
            storage.put_scalar(f"{prefix}total_loss", total)
            if len(averaged) > 1:
                storage.put_scalars(**averaged)
        elif not all(np.isfinite(v) for v in metrics.values()):
            terms = ", ".join(f"{k}={v:.6g}" for k, v in metrics.items())
            raise FloatingPointError(f"Loss became non-finite at iteration {self.iter}: {terms}")

    def state_dict(self):
        ret = super().state_dict()
        ret["optimizer"] = self.optimizer.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.optimizer.load_state_dict(state_dict["optimizer"])


class AMPTrainer(SimpleTrainer):
    """SimpleTrainer with automatic mixed precision (CUDA only) and a gradient scaler."""

    def __init__(self, model, data_loader, optimizer, grad_clipper=None, grad_scaler=None):
        super().__init__(model, data_loader, optimizer, grad_clipper)
        if not torch.cuda.is_available():
            raise RuntimeError("SOLVER.AMP.ENABLED needs a CUDA device; set it False on CPU")
        self.grad_scaler = grad_scaler or torch.amp.GradScaler("cuda")

    def run_step(self):
        assert self.model.training, "[AMPTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        with torch.autocast("cuda"):
            loss_dict = self.model(data)
            losses = sum(loss_dict.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.grad_scaler.scale(losses).backward()
        self.after_backward()
        if self.grad_clipper is not None:
            self.grad_scaler.unscale_(self.optimizer)
            self.grad_clipper(self.model.parameters())
        self._write_metrics(loss_dict, data_time)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()

    def state_dict(self):
        ret = super().state_dict()
        ret["grad_scaler"] = self.grad_scaler.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
