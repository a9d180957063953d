"""The PathManager every user-given path goes through, and atomic file writing."""

import contextlib
import os
import tempfile
import threading

from iopath.common.file_io import HTTPURLHandler, PathManager as _PathManagerClass

__all__ = ["PathManager", "atomic_write"]

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
