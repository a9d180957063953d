"""The project's CfgNode (fvcore's, with one-line errors) and the ``@configurable`` decorator."""

import functools
import inspect

import yaml
from fvcore.common.config import CfgNode as _FvcoreCfgNode

from daaf.utils.errors import ConfigError

__all__ = ["CfgNode", "get_cfg", "configurable"]


def _one_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split())


class CfgNode(_FvcoreCfgNode):
    """fvcore's CfgNode (``_BASE_`` inheritance, KEY VALUE overrides) whose merge errors are
    :class:`ConfigError` with one line naming the key and the file (or the command line)."""

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
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


def get_cfg() -> CfgNode:
    """Return a fresh copy of the project's default config (every key the project reads)."""
    from .defaults import _C

    return _C.clone()


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
