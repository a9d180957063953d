"""Looking up registry entries with a one-line error that names the config key."""

from fvcore.common.registry import Registry

from .errors import ConfigError

__all__ = ["Registry", "get_from_registry"]


def get_from_registry(registry: Registry, name: str, key: str):
    """``registry.get(name)``, or a ConfigError naming ``key`` and the registered names."""
    try:
        return registry.get(name)
    except KeyError:
        known = ", ".join(sorted(n for n, _ in registry))
        raise ConfigError(f"{key}: '{name}' is not registered in {registry._name}; registered: {known}") from None
