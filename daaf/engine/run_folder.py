"""A training's OUTPUT_DIR has one writer and holds one run.

:func:`claim_run_folder` takes an exclusive lock on the folder for the life of the training process
(``fcntl.flock`` on ``OUTPUT_DIR/.daaf-run.lock``: the kernel drops it when the process ends, so a
kill never leaves a stale lock) and refuses a new run into a folder that holds an earlier run's
record, where its files would be silently mixed with the new run's. ``--resume`` goes on with that
run; ``--start-over`` moves its record aside (into ``OUTPUT_DIR/replaced-<UTC time>/``, nothing is
deleted) and starts a new one. Evaluation and the tools only read a run folder and take no lock.
"""

import fcntl
import glob
import json
import os
import time
from datetime import datetime, timezone
from typing import List

from daaf.utils.errors import UserError

__all__ = ["claim_run_folder", "release_run_folder", "run_record", "LOCK_NAME"]

LOCK_NAME = ".daaf-run.lock"
# What a training writes that makes the folder a run's record (log.txt alone is a start that failed).
_RECORD_PATTERNS = ("last_checkpoint", "model_*.pth", "metrics.json", "config.yaml", "events.out.tfevents.*", "inference")

_held = {}  # folder -> open lock file: kept open (so locked) until the process ends


def run_record(folder: str) -> List[str]:
    """The names of the files and folders of an earlier run's record in ``folder`` (sorted)."""
    found = set()
    for pattern in _RECORD_PATTERNS:
        found.update(os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(folder), pattern)))
    return sorted(found)


def _lock(folder: str) -> None:
    path = os.path.join(folder, LOCK_NAME)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        try:
            holder = json.loads(handle.read() or "{}")
        except ValueError:
            holder = {}
        handle.close()
        who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}"
        raise UserError(f"OUTPUT_DIR {folder}: another training writes there ({who}); wait for it or give another OUTPUT_DIR") from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
    handle.flush()
    _held[os.path.realpath(folder)] = handle


def release_run_folder(folder: str) -> None:
    """Give up this process's lock on ``folder`` (a process that ends gives it up anyway)."""
    handle = _held.pop(os.path.realpath(folder), None)
    if handle is not None:
        handle.close()


def claim_run_folder(folder: str, *, resume: bool, start_over: bool = False) -> None:
    """Lock ``folder`` (an existing, writable OUTPUT_DIR) for this process and check that this run
    may write there: ``resume`` goes on with the run in it; otherwise a folder holding an earlier
    run's record is refused with one line, unless ``start_over`` moves that record aside."""
    if os.path.realpath(folder) not in _held:  # a second run of this process in the folder keeps its lock
        _lock(folder)
    record = run_record(folder)
    if not record or resume:
        return
    if not start_over:
        shown = ", ".join(record[:4]) + (", ..." if len(record) > 4 else "")
        raise UserError(
            f"OUTPUT_DIR {folder}: holds an earlier run ({shown}); --resume goes on with it, "
            "--start-over moves it into a replaced-<time> folder there and starts a new run, or give another OUTPUT_DIR"
        )
    aside = os.path.join(folder, "replaced-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ"))
    os.makedirs(aside)
    logs = [os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(folder), "log.txt*"))]
    for name in record + logs:
        os.rename(os.path.join(folder, name), os.path.join(aside, name))
