"""Importing the user's own modules that a config lists in IMPORTS (where their registered
components come from)."""

import importlib
import importlib.util
import os
import sys

from daaf.utils.errors import ConfigError

__all__ = ["import_user_modules"]


def import_user_modules(names) -> None:
    """Import each module of ``cfg.IMPORTS``: a dotted module name or a path to a .py file.

    This is how components registered in a user's own code become available to a config.
    """
    for name in names:
        if name.endswith(".py"):
            path = os.path.abspath(name)
            if not os.path.isfile(path):
                raise ConfigError(f"IMPORTS: file not found: {name}")
            module_name = "daaf_user_" + os.path.splitext(os.path.basename(path))[0]
            if module_name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as e:
                raise ConfigError(f"IMPORTS: cannot import module '{name}': {e}") from None
