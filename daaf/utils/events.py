"""EventStorage (metrics of the running training) and the writers that print or store them.

The design follows detectron2's ``detectron2.utils.events``: the trainer opens an :class:`EventStorage`, code anywhere calls
``get_event_storage().put_scalar(...)``, and writers (console, ``metrics.json``,
TensorBoard) periodically read the latest values.
"""

import datetime
import json
import logging
import os
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

import torch
from fvcore.common.history_buffer import HistoryBuffer

from .file_io import PathManager

__all__ = [
    "EventStorage",
    "get_event_storage",
    "EventWriter",
    "JSONWriter",
    "TensorboardXWriter",
    "CommonMetricPrinter",
]

_CURRENT_STORAGE_STACK = []


def get_event_storage() -> "EventStorage":
    """The innermost open EventStorage (raises if none is open)."""
    if not _CURRENT_STORAGE_STACK:
        raise RuntimeError("get_event_storage() has to be called inside a 'with EventStorage(...)' context!")
    return _CURRENT_STORAGE_STACK[-1]


class EventStorage:
    """Scalars (with history), images and the current iteration of a training run."""

    def __init__(self, start_iter: int = 0):
        self._history = defaultdict(HistoryBuffer)
        self._smoothing_hints = {}
        self._latest_scalars = {}
        self._iter = start_iter
        self._vis_data = []
        self._histograms = []
        self._prefix = ""

    def put_scalar(self, name: str, value, smoothing_hint: bool = True, cur_iter: int = None) -> None:
        """Record a scalar for the current iteration (or ``cur_iter``). ``smoothing_hint``:
        writers may average it. Inside :meth:`name_scope`, the name gets the scope's prefix."""
        name = self._prefix + name
        cur_iter = self._iter if cur_iter is None else int(cur_iter)
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        self._history[name].update(value, cur_iter)
        self._latest_scalars[name] = (value, cur_iter)
        existing = self._smoothing_hints.get(name)
        if existing is not None and existing != smoothing_hint:
            raise ValueError(f"Scalar {name} was put with a different smoothing_hint!")
        self._smoothing_hints[name] = smoothing_hint

    def put_scalars(self, *, smoothing_hint: bool = True, cur_iter: int = None, **kwargs) -> None:
        for k, v in kwargs.items():
            self.put_scalar(k, v, smoothing_hint=smoothing_hint, cur_iter=cur_iter)

    def put_histogram(self, name: str, tensor: torch.Tensor, bins: int = 1000) -> None:
        """Queue a histogram of ``tensor``'s values for the TensorBoard writer."""
        values = tensor.detach().float().flatten().cpu()
        low, high = values.min().item(), values.max().item()
        self._histograms.append(
            dict(
                tag=self._prefix + name,
                min=low,
                max=high,
                num=values.numel(),
                sum=float(values.sum()),
                sum_squares=float((values**2).sum()),
                bucket_limits=torch.linspace(low, high, bins + 1)[1:].tolist(),
                bucket_counts=torch.histc(values, bins=bins, min=low, max=high).tolist(),
                global_step=self._iter,
            )
        )

    def clear_histograms(self) -> None:
        self._histograms = []

    def put_image(self, name: str, img_tensor) -> None:
        """Queue an image (CHW float in [0, 1] or uint8) for the TensorBoard writer."""
        self._vis_data.append((name, img_tensor, self._iter))

    def clear_images(self) -> None:
        self._vis_data = []

    def history(self, name: str) -> HistoryBuffer:
        if name not in self._history:
            raise KeyError(f"No history metric available for {name}!")
        return self._history[name]

    def histories(self) -> dict:
        return self._history

    def latest(self) -> dict:
        """name -> (latest value, iteration it was put at)."""
        return self._latest_scalars

    def latest_with_smoothing_hint(self, window_size: int = 20) -> dict:
        """Like :meth:`latest`, but smoothed scalars are the median over ``window_size``."""
        result = {}
        for name, (value, itr) in self._latest_scalars.items():
            if self._smoothing_hints[name]:
                value = self._history[name].median(window_size)
            result[name] = (value, itr)
        return result

    def step(self) -> None:
        self._iter += 1

    @property
    def iter(self) -> int:
        return self._iter

    @iter.setter
    def iter(self, value: int) -> None:
        self._iter = int(value)

    @property
    def vis_data(self):
        return self._vis_data

    @property
    def iteration(self) -> int:
        """The current iteration, under the second name detectron2's EventStorage gives it
        (detectron2 code that runs inside a training reads either)."""
        return self._iter

    def smoothing_hints(self) -> dict:
        return dict(self._smoothing_hints)

    def __enter__(self):
        _CURRENT_STORAGE_STACK.append(self)
        # detectron2 modules (RPN, ROI heads, ...) call detectron2's own get_event_storage(): when
        # detectron2 is loaded, this storage is its current one too, so their scalars land here.
        self._detectron2_stack = getattr(sys.modules.get("detectron2.utils.events"), "_CURRENT_STORAGE_STACK", None)
        if self._detectron2_stack is not None:
            self._detectron2_stack.append(self)
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        assert _CURRENT_STORAGE_STACK[-1] is self
        _CURRENT_STORAGE_STACK.pop()
        if self._detectron2_stack is not None:
            assert self._detectron2_stack[-1] is self
            self._detectron2_stack.pop()

    @contextmanager
    def name_scope(self, name: str):
        """Scalars put inside get the prefix ``name/`` (as in detectron2)."""
        old_prefix = self._prefix
        self._prefix = name.rstrip("/") + "/"
        try:
            yield
        finally:
            self._prefix = old_prefix


class EventWriter:
    """Base class of writers; ``write()`` is called periodically by the PeriodicWriter hook."""

    def write(self):
        raise NotImplementedError

    def close(self):
        pass


class JSONWriter(EventWriter):
    """Append the latest scalars as one JSON object per line (per iteration) to ``json_file``."""

    def __init__(self, json_file: str, window_size: int = 20):
        self._file_handle = PathManager.open(json_file, "a")
        self._window_size = window_size
        self._last_write = -1

    def write(self):
        storage = get_event_storage()
        to_save = defaultdict(dict)
        for name, (value, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr <= self._last_write:
                continue
            to_save[itr][name] = value
        if to_save:
            self._last_write = max(to_save)
        lines = "".join(json.dumps({"iteration": itr, **scalars}, sort_keys=True) + "\n" for itr, scalars in sorted(to_save.items()))
        # One write call per flush so a killed process leaves whole lines.
        self._file_handle.write(lines)
        self._file_handle.flush()
        try:
            os.fsync(self._file_handle.fileno())
        except (AttributeError, OSError):
            pass

    def close(self):
        self._file_handle.close()


class TensorboardXWriter(EventWriter):
    """Write scalars (and queued images) as TensorBoard event files in ``log_dir``. The event file
    is created at the first write, so a run that writes nothing leaves none."""

    def __init__(self, log_dir: str, window_size: int = 20, **kwargs):
        self._window_size = window_size
        self._log_dir, self._kwargs = log_dir, kwargs
        self._writer = None
        self._last_write = -1

    def write(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self._log_dir, **self._kwargs)
        storage = get_event_storage()
        new_last_write = self._last_write
        for name, (value, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr > self._last_write:
                self._writer.add_scalar(name, value, itr)
                new_last_write = max(new_last_write, itr)
        self._last_write = new_last_write
        for name, img, itr in storage.vis_data:
            self._writer.add_image(name, img, itr)
        storage.clear_images()
        for params in storage._histograms:
            self._writer.add_histogram_raw(**params)
        storage.clear_histograms()
        self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()


class CommonMetricPrinter(EventWriter):
    """Print iteration, ETA, losses, timing, learning rate and memory to the log."""

    def __init__(self, max_iter: int, window_size: int = 20):
        self.logger = logging.getLogger("daaf.utils.events")
        self._max_iter = max_iter
        self._window_size = window_size
        self._last_write = None

    def _eta(self, storage):
        iteration = storage.iter
        try:
            eta_seconds = storage.history("time").median(1000) * (self._max_iter - iteration - 1)
            storage.put_scalar("eta_seconds", eta_seconds, smoothing_hint=False)
            return str(datetime.timedelta(seconds=int(eta_seconds)))
        except KeyError:
            eta = None
            if self._last_write is not None:
                seconds_per_iter = (time.perf_counter() - self._last_write[1]) / max(iteration - self._last_write[0], 1)
                eta = str(datetime.timedelta(seconds=int(seconds_per_iter * (self._max_iter - iteration - 1))))
            self._last_write = (iteration, time.perf_counter())
            return eta

    def write(self):
        storage = get_event_storage()
        iteration = storage.iter
        if iteration == self._max_iter:
            return  # the final write after training is done by hooks' after_train
        histories = storage.histories()

        def median(name):
            return histories[name].median(self._window_size) if name in histories else None

        data_time, iter_time = median("data_time"), median("time")
        lr = histories["lr"].latest() if "lr" in histories else None
        eta = self._eta(storage)
        losses = "  ".join(f"{k}: {v.median(self._window_size):.4g}" for k, v in histories.items() if "loss" in k)
        memory = f"max_mem: {torch.cuda.max_memory_allocated() / 1024 / 1024:.0f}M" if torch.cuda.is_available() else ""
        parts = [
            f"eta: {eta}" if eta else "",
            f"iter: {iteration}",
            losses,
            f"time: {iter_time:.4f}" if iter_time is not None else "",
            f"data_time: {data_time:.4f}" if data_time is not None else "",
            f"lr: {lr:.5g}" if lr is not None else "",
            memory,
        ]
        self.logger.info("  ".join(p for p in parts if p))
