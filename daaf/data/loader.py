"""ReIDDataLoader: the torch DataLoader every loader of the project is, with cheap worker-to-main
transfer of batches (:mod:`daaf.data.transfer`), workers that end with their parent, and errors of
the user's data raised in a worker as their one line."""

import ctypes
import os
import signal
import sys
import threading
import time

from torch.utils.data import DataLoader, get_worker_info

from daaf.utils.errors import UserError

from . import transfer
from .batch import collate_reid_batch

__all__ = ["ReIDDataLoader", "exit_with_parent"]


def exit_with_parent() -> None:
    """Make this process (a loader worker) end when its parent dies, even while it is blocked
    writing a batch to a pipe nobody reads (torch's own watchdog runs only between batches): on
    Linux the kernel sends SIGKILL (prctl PR_SET_PDEATHSIG), elsewhere a thread watches the parent."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG = 1
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)
            return

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class _WorkerInit:
    """A loader worker's start: :func:`exit_with_parent`, then the caller's ``worker_init_fn``."""

    def __init__(self, worker_init_fn=None):
        self.worker_init_fn = worker_init_fn

    def __call__(self, worker_id: int) -> None:
        exit_with_parent()
        if self.worker_init_fn is not None:
            self.worker_init_fn(worker_id)


class _EncodeInWorkers:
    """``collate``, then, inside a loader worker, the batch in the form that is cheapest to send
    to the main process (:mod:`daaf.data.transfer`)."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, items):
        batch = self.collate(items)
        return transfer.encode(batch) if get_worker_info() is not None else batch


class ReIDDataLoader(DataLoader):
    """A torch DataLoader (same arguments; ``collate_fn`` defaults to :func:`collate_reid_batch`)
    whose workers send batches in a cheaper form (:mod:`daaf.data.transfer`) that the main process
    turns back: it yields exactly the batches of a plain DataLoader, faster (per batch of 64 at
    256x128 about 0.6 ms per small tensor and 1.8 MB of mask copies; benchmarks/bench_loader.py).
    Its workers end when the process that started them dies (:func:`exit_with_parent`)."""

    def __init__(self, dataset, *, collate_fn=collate_reid_batch, worker_init_fn=None, **kwargs):
        super().__init__(dataset, collate_fn=_EncodeInWorkers(collate_fn), worker_init_fn=_WorkerInit(worker_init_fn), **kwargs)

    def __iter__(self):
        try:
            for batch in super().__iter__():
                yield transfer.decode(batch)
        except UserError as e:
            raise _from_worker(e) from None


def _from_worker(error: UserError) -> UserError:
    """A UserError raised in a loader worker as its one line: torch re-raises it in the main
    process with the worker's whole traceback as its message."""
    text = str(error)
    if "DataLoader worker process" not in text:
        return error
    last = text.strip().splitlines()[-1]
    prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
    return type(error)(last[len(prefix) :] if last.startswith(prefix) else last)
