"""The PathManager every user-given path goes through, and atomic file writing."""

import contextlib
import json
import os
import re
import tempfile
import threading

from iopath.common.file_io import HTTPURLHandler
from iopath.common.file_io import PathManager as _PathManagerClass

__all__ = ["PathManager", "atomic_write", "sweep_stale_temp_files", "truncate_json_lines"]

PathManager = _PathManagerClass()
PathManager.register_handler(HTTPURLHandler())


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask (read by setting and restoring it: os has no getter)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb"):
    """Open a temporary file beside ``path``; on success it is fsync'ed and renamed onto ``path``.

    A crash or kill at any moment leaves either the old file or the complete new one, never a
    partial file. Only local paths are supported (``PathManager.get_local_path`` is applied).
    """
    path = PathManager.get_local_path(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain open() gives
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


# atomic_write's temporary files: "." + the target's name + "." + mkstemp's 8 random characters + ".tmp"
_TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def sweep_stale_temp_files(folder: str) -> list:
    """Delete the temporary files atomic_write left under ``folder`` when a process was killed
    mid-write (each can be a whole checkpoint). Call it before this run writes anything there.
    Returns the paths removed."""
    removed = []
    for root, _, files in os.walk(folder):
        for name in files:
            if _TEMP_FILE.match(name):
                path = os.path.join(root, name)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                    removed.append(path)
    return removed


def truncate_json_lines(path: str, first_dropped_iteration: int) -> int:
    """Cut a JSON-lines file (metrics.json) before its first line whose "iteration" is at least
    ``first_dropped_iteration``, in place with one truncate (a writer holding the file open in
    append mode goes on at the new end). Returns the number of lines dropped; a missing file: 0."""
    if not os.path.isfile(path):
        return 0
    offset, keep_until, dropped = 0, None, 0
    with open(path, "rb") as f:
        for line in f:
            try:
                iteration = json.loads(line).get("iteration", -1)
            except ValueError:  # a torn last line of a killed writer
                iteration = first_dropped_iteration
            if iteration >= first_dropped_iteration:
                keep_until = offset if keep_until is None else keep_until
                dropped += 1
            offset += len(line)
    if keep_until is not None:
        os.truncate(path, keep_until)
    return dropped
