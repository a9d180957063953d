"""Looking up registry entries with a one-line error that names the config key."""

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


def get_from_registry(registry: Registry, name: str, key: str):
    """``registry.get(name)``, or a ConfigError naming ``key`` and the registered names."""
    try:
        return registry.get(name)
    except KeyError:
        known = ", ".join(sorted(n for n, _ in registry))
        raise ConfigError(f"{key}: '{name}' is not registered in {registry._name}; registered: {known}") from None
