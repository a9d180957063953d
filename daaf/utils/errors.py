"""Errors caused by what a user gave (a path, a config key, a file), as opposed to bugs.

Command-line tools catch :class:`UserError` and print its one-line message instead of a traceback.
"""

import errno


def is_full_disk(error: BaseException) -> bool:
    """Whether ``error`` is an OSError saying the disk (or the quota) is full."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


class UserError(ValueError):
    """Bad user input. The message is one line naming the file, key or value and what was expected."""


class ConfigError(UserError):
    """An unknown config key, a value of the wrong type, or an unreadable config file."""


class DatasetError(UserError):
    """A dataset folder, file name, image or label file that does not match what is expected."""
