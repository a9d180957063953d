"""Logging set-up: colourless console + ``log.txt`` (rank 0) or ``log.txt.rank{N}``."""

import functools
import logging
import os
import sys

from .file_io import PathManager


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a record is emitted (not the stream it was when
    the handler was made: a tool run in-process by a test, or a redirected stdout, gets its lines)."""

    def __init__(self):
        super().__init__(stream=sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


@functools.lru_cache()
def setup_logger(output=None, distributed_rank: int = 0, name: str = "daaf") -> logging.Logger:
    """Configure and return the ``name`` logger.

    Args:
        output: a directory (log goes to ``output/log.txt``) or a file path ending in .txt/.log.
        distributed_rank: only rank 0 logs to the console (one console handler per logger, however
            often it is set up); every rank writes its own file.
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    formatter = logging.Formatter("[%(asctime)s %(name)s %(levelname)s]: %(message)s", "%m/%d %H:%M:%S")
    if distributed_rank == 0 and not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        console = _ConsoleHandler()
        console.setLevel(logging.INFO)
        console.setFormatter(formatter)
        logger.addHandler(console)
    if output is not None:
        filename = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
        if distributed_rank > 0:
            filename = f"{filename}.rank{distributed_rank}"
        PathManager.mkdirs(os.path.dirname(filename) or ".")
        file_handler = logging.StreamHandler(PathManager.open(filename, "a"))
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    return logger
