"""Looking up registry entries with a one-line error that names the config key."""

import logging

from fvcore.common.registry import Registry as _FvcoreRegistry

from .errors import ConfigError

__all__ = ["Registry", "get_from_registry"]


class Registry(_FvcoreRegistry):
    """fvcore's Registry whose ``register`` also takes an explicit name:
    ``@REGISTRY.register()`` (the object's own name) or ``@REGISTRY.register(name="HAB")``."""

    def register(self, obj=None, *, name: str = None):
        if obj is None:

            def decorator(func_or_class):
                self._do_register(name or func_or_class.__name__, func_or_class)
                return func_or_class

            return decorator
        self._do_register(name or obj.__name__, obj)
        return obj

    def register_deprecated_alias(self, old_name: str, new_name: str) -> None:
        """Let configs that still say ``old_name`` get ``new_name`` (with a deprecation warning
        from :func:`get_from_registry`)."""
        if not hasattr(self, "_deprecated_aliases"):
            self._deprecated_aliases = {}
        self._deprecated_aliases[old_name] = new_name


def get_from_registry(registry: Registry, name: str, key: str):
    """``registry.get(name)``, or a ConfigError naming ``key`` and the registered names. A
    deprecated alias gives its new entry and one warning line saying what to write instead."""
    aliases = getattr(registry, "_deprecated_aliases", {})
    if name in aliases and name not in registry:
        logging.getLogger(__name__).warning(f"{key}: '{name}' is deprecated; it is now '{aliases[name]}' (write that in the config)")
        name = aliases[name]
    try:
        return registry.get(name)
    except KeyError:
        known = ", ".join(sorted(n for n, _ in registry))
        raise ConfigError(f"{key}: '{name}' is not registered in {registry._name}; registered: {known}") from None
