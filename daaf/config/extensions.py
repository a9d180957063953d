"""Config extensions: functions that add a component's own keys to the config.

The design follows detectron2's projects (PointRend's ``add_pointrend_config(cfg)`` lives beside its
heads), with one difference: here a component registers its function once, with
:func:`config_extension`, and every config the project builds (:func:`daaf.config.get_cfg`,
:func:`daaf.config.build_config`) gets the keys, so no entry point has to call it by name.

    from daaf.config import CfgNode as CN, config_extension

    @config_extension
    def add_my_branch_config(cfg):
        cfg.MODEL.MY_BRANCH = CN()
        cfg.MODEL.MY_BRANCH.WEIGHT = 1.0

A module outside the package is found through the config's ``IMPORTS`` (the YAML file, its
``_BASE_`` chain or the command line), which :func:`daaf.config.build_config` imports before it
merges any YAML. An extension adds keys; it may not change or remove a key that is already there.
What its keys allow is declared beside it with :func:`daaf.config.checks.declare_value_checks`.
"""

from typing import Callable, Dict, List

from daaf.utils.errors import ConfigError

__all__ = ["flatten_config", "config_extension", "registered_config_extensions", "apply_config_extensions", "BUILTIN_CONFIG_MODULES"]

# The package's own component families that add their keys through an extension, as a third-party
# module does: imported by get_cfg() so that the default config always holds their keys.
BUILTIN_CONFIG_MODULES = ("daaf.modeling.attention.config", "daaf.pseudo_label.detectron2_labeler")

_EXTENSIONS: Dict[str, Callable] = {}


def config_extension(func: Callable) -> Callable:
    """Register ``func(cfg) -> None``, which adds its component's keys to a config (a decorator;
    returns ``func``). Registering the same function again replaces the earlier entry."""
    if not callable(func):
        raise TypeError(f"config_extension takes a function of the config, got {func!r}")
    _EXTENSIONS[f"{func.__module__}.{func.__qualname__}"] = func
    return func


def registered_config_extensions() -> List[str]:
    """The names (module.function) of the registered extensions, in the order they are applied."""
    return list(_EXTENSIONS)


def flatten_config(node, prefix: str = "") -> dict:
    """{"A.B.C": value} for every leaf of a config (or any nested mapping); None gives {}."""
    items = {}
    for key, value in (node or {}).items():
        if isinstance(value, dict):
            items.update(flatten_config(value, f"{prefix}{key}."))
        else:
            items[prefix + key] = value
    return items


def apply_config_extensions(cfg) -> None:
    """Call every registered extension on ``cfg`` (not frozen), in registration order; a
    ConfigError names the extension that changes or removes a key that was there before it."""
    for name, func in _EXTENSIONS.items():
        before = flatten_config(cfg)
        func(cfg)
        after = flatten_config(cfg)
        changed = [k for k, v in before.items() if k not in after or after[k] != v]
        if changed:
            raise ConfigError(
                f"config extension {name} changes keys it did not add: {', '.join(changed[:3])} (an extension adds new keys only)"
            )
