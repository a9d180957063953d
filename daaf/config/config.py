"""The project's CfgNode (fvcore's, with one-line errors), the default config and the
``@configurable`` decorator. The decorator follows detectron2's ``configurable``: a constructor
takes explicit arguments, and a ``from_config(cfg)`` classmethod maps a config onto them."""

import functools
import importlib
import inspect
import os
from typing import List, Tuple

import yaml
from fvcore.common.config import CfgNode as _FvcoreCfgNode

from daaf.utils.errors import ConfigError

__all__ = ["CfgNode", "get_cfg", "configurable", "config_file_chain"]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).split())
    unknown = "Non-existent config key: "  # yacs' wording of a key the config does not have
    if text.startswith(unknown):
        key = text[len(unknown) :]
        return f"unknown config key {key} (a component's own keys exist once its module is in IMPORTS)"
    return text


class CfgNode(_FvcoreCfgNode):
    """fvcore's CfgNode (``_BASE_`` inheritance, KEY VALUE overrides) whose merge errors are
    :class:`ConfigError` with one line naming the key and the file (or the command line)."""

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        config_file_chain(cfg_filename)  # a folder, a non-mapping or a _BASE_ cycle: one line
        try:
            super().merge_from_file(cfg_filename, allow_unsafe=allow_unsafe)
        except FileNotFoundError as e:
            missing = getattr(e, "filename", None) or cfg_filename
            raise ConfigError(f"{cfg_filename}: config file not found: {missing}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{cfg_filename}: not valid YAML: {_one_line(e)}") from None
        except (KeyError, ValueError, AssertionError, TypeError) as e:
            raise ConfigError(f"{cfg_filename}: {_one_line(e)}") from None

    def merge_from_list(self, cfg_list):
        if len(cfg_list) % 2 != 0:
            raise ConfigError(f"command-line overrides must be KEY VALUE pairs; got an odd number: {list(cfg_list)}")
        try:
            return super().merge_from_list(cfg_list)
        except (KeyError, ValueError, AssertionError, TypeError) as e:
            raise ConfigError(f"command-line override: {_one_line(e)}") from None

    def dump(self, *args, **kwargs) -> str:
        """Return the config as a YAML string that :meth:`merge_from_file` reads back."""
        return super().dump(*args, **kwargs)


def _base_path(base: str, child: str) -> str:
    # where fvcore looks for a _BASE_: relative to the file that names it
    base = os.path.expanduser(base)
    return base if base.startswith(("/", "https://", "http://")) else os.path.join(os.path.dirname(child), base)


def config_file_chain(cfg_filename: str) -> List[Tuple[str, dict]]:
    """(path, its YAML mapping) for ``cfg_filename`` and every file of its ``_BASE_`` chain, bases
    first. A ConfigError names the file that is missing, a folder, not YAML, not a mapping of keys,
    or that closes a ``_BASE_`` cycle."""
    chain: List[Tuple[str, dict]] = []

    def visit(path: str, visiting: Tuple[str, ...]) -> None:
        real = os.path.realpath(path)
        if real in visiting:
            cycle = " -> ".join([*visiting[visiting.index(real) :], real])
            raise ConfigError(f"{cfg_filename}: _BASE_ files include each other: {cycle}")
        if os.path.isdir(path):
            raise ConfigError(f"{path}: is a folder; expected a YAML config file")
        try:
            with _FvcoreCfgNode._open_cfg(path) as f:
                loaded = yaml.safe_load(f)
        except FileNotFoundError:
            raise ConfigError(f"{cfg_filename}: config file not found: {path}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {_one_line(e)}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the config file: {_one_line(e)}") from None
        loaded = {} if loaded is None else loaded
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys (KEY: value), got a YAML {type(loaded).__name__}")
        bases = loaded.get("_BASE_", [])
        for base in [bases] if isinstance(bases, str) else bases:
            if not isinstance(base, str):
                raise ConfigError(f"{path}: _BASE_ must be a file name or a list of them, got {base!r}")
            visit(_base_path(base, path), (*visiting, real))
        chain.append((path, loaded))

    visit(cfg_filename, ())
    return chain


def get_cfg() -> CfgNode:
    """Return a fresh copy of the project's default config: the core keys, then the keys of every
    registered config extension (:mod:`daaf.config.extensions`), the package's own families first."""
    from .defaults import _C
    from .extensions import BUILTIN_CONFIG_MODULES, apply_config_extensions

    for module in BUILTIN_CONFIG_MODULES:
        importlib.import_module(module)  # registers that family's extension
    cfg = _C.clone()
    apply_config_extensions(cfg)
    return cfg


def _called_with_cfg(*args, **kwargs) -> bool:
    if args and isinstance(args[0], _FvcoreCfgNode):
        return True
    return isinstance(kwargs.get("cfg"), _FvcoreCfgNode)


def _get_args_from_config(from_config, *args, **kwargs) -> dict:
    """Call ``from_config(cfg, ...)`` and merge its result with extra explicit kwargs."""
    signature = inspect.signature(from_config)
    params = list(signature.parameters)
    if not params or params[0] != "cfg":
        name = getattr(from_config, "__qualname__", repr(from_config))
        raise TypeError(f"{name} must take 'cfg' as its first argument")
    takes_var_kwargs = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values())
    if takes_var_kwargs:
        return from_config(*args, **kwargs)
    accepted = set(params)
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in accepted}
    result = from_config(*args, **kwargs)
    result.update(extra)
    return result


def configurable(init_func=None, *, from_config=None):
    """Let a class ``__init__`` (or a function) also be called with a config, detectron2-style.

    On ``__init__``: ``Cls(cfg, **overrides)`` calls ``Cls.from_config(cfg, ...)`` to get the
    explicit arguments; ``Cls(a=1, b=2)`` works as usual. On a function, pass
    ``from_config=fn``: ``@configurable(from_config=lambda cfg: {...})``.
    """
    if init_func is not None:
        if not (inspect.isfunction(init_func) and init_func.__name__ == "__init__"):
            raise TypeError("@configurable without arguments decorates __init__ only")

        @functools.wraps(init_func)
        def wrapped_init(self, *args, **kwargs):
            from_config_func = getattr(type(self), "from_config", None)
            if from_config_func is None:
                raise AttributeError(f"{type(self).__name__} needs a from_config classmethod")
            if _called_with_cfg(*args, **kwargs):
                init_func(self, **_get_args_from_config(from_config_func, *args, **kwargs))
            else:
                init_func(self, *args, **kwargs)

        return wrapped_init

    if from_config is None:
        return configurable

    def decorator(func):
        @functools.wraps(func)
        def wrapped(*args, **kwargs):
            if _called_with_cfg(*args, **kwargs):
                return func(**_get_args_from_config(from_config, *args, **kwargs))
            return func(*args, **kwargs)

        wrapped.from_config = from_config
        return wrapped

    return decorator
