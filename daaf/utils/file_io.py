"""The PathManager every user-given path goes through, and atomic file writing."""

import contextlib
import glob
import json
import os
import re
import shutil
import tempfile
import threading

from iopath.common.file_io import HTTPURLHandler
from iopath.common.file_io import PathManager as _PathManagerClass

from .errors import UserError, is_full_disk

__all__ = [
    "PathManager",
    "cache_dir",
    "atomic_write",
    "replaced_folder",
    "sweep_stale_temp_files",
    "truncate_json_lines",
    "writable_folder",
]

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
    partial file. A full disk is a one-line UserError naming the file (the old file stays). Only
    local paths are supported (``PathManager.get_local_path`` is applied).
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
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if _disk_full(e, directory):
            raise UserError(f"cannot write {path}: no space left on device (the file was left as it was)") from None
        raise


def _disk_full(error: BaseException, directory: str) -> bool:
    """Whether ``error`` (or what it arose from) says the disk is full; torch's own writer reports
    a full disk as "unexpected pos", so a failed write on a disk with no room left counts too."""
    chain = []
    while error is not None and len(chain) < 8:
        chain.append(error)
        error = error.__cause__ or error.__context__
    if any(is_full_disk(e) for e in chain):
        return True
    if any(isinstance(e, RuntimeError) and "unexpected pos" in str(e) for e in chain):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(directory).free < 1 << 20
    return False


def writable_folder(path: str, key: str) -> str:
    """Create folder ``path`` if needed and check that files can be written there; a one-line
    UserError naming ``key`` when it is a file, cannot be created or is read-only."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{key} {path}: is a file; expected a folder (or a path that does not exist yet)")
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise UserError(f"{key} {path}: cannot write there ({e.strerror})") from None
    return path


@contextlib.contextmanager
def replaced_folder(path: str):
    """Build the new contents of folder ``path`` in a temporary folder beside it (yielded); when
    the block succeeds it takes the place of ``path`` (the old folder is renamed aside, the new one
    in, then the old one is removed), so ``path`` never holds a mix of old and new files. An
    exception removes the temporary folder and leaves ``path`` as it was. What an earlier call
    killed mid-way left beside ``path`` is cleaned up first (an old folder set aside is put back
    when ``path`` is missing)."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    for leftover in sorted(glob.glob(os.path.join(parent, glob.escape("." + os.path.basename(path)) + ".*-*"))):
        kept = os.path.join(leftover, "contents")
        if leftover.rsplit(".", 1)[-1].startswith("old-") and os.path.isdir(kept) and not os.path.exists(path):
            os.replace(kept, path)
        shutil.rmtree(leftover, ignore_errors=True)
    new = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".new-", dir=parent)
    try:
        os.chmod(new, 0o777 & ~_umask())
        yield new
        old = None
        if os.path.isdir(path):
            old = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".old-", dir=parent)
            os.replace(path, os.path.join(old, "contents"))
        os.replace(new, path)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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


def cache_dir() -> str:
    """Where the project caches what it derives (image checks, compiled kernels): $DAAF_CACHE_DIR,
    else ~/.cache/daaf-reid."""
    return os.environ.get("DAAF_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "daaf-reid")
