"""The one way every entry point builds its config: :func:`build_config`."""

from typing import List, Optional, Sequence

from daaf.utils.errors import ConfigError

from .checks import check_config_values
from .config import CfgNode, config_file_chain, get_cfg
from .imports import import_user_modules

__all__ = ["build_config", "config_imports"]


def _as_module_list(value, where: str) -> List[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: IMPORTS must be a list of module names or .py paths, got {value!r}")
    return list(value)


def config_imports(config_file: Optional[str] = None, opts: Sequence[str] = ()) -> List[str]:
    """The modules a config asks for (``IMPORTS``) in the order they are named: those of the
    ``_BASE_`` chain of ``config_file`` (bases first), then of the KEY VALUE ``opts``. Each once."""
    found: List[str] = []
    if config_file:
        for path, mapping in config_file_chain(config_file):
            found += _as_module_list(mapping.get("IMPORTS", []), path)
    opts = list(opts or [])
    for key, value in zip(opts[0::2], opts[1::2]):
        if key == "IMPORTS":
            found += _as_module_list(CfgNode._decode_cfg_value(value), "command-line override")
    return list(dict.fromkeys(found))


def build_config(config_file: Optional[str] = None, opts: Sequence[str] = (), freeze: bool = True) -> CfgNode:
    """The config of a run: the modules of its ``IMPORTS`` imported first (so that the components
    and config extensions they register are there), then the defaults with every extension's keys,
    ``config_file`` (with its ``_BASE_`` chain) and the KEY VALUE ``opts`` merged in that order.

    ``IMPORTS`` of the result lists the modules of the whole chain and the command line, so that a
    dumped config.yaml reads back on its own. A ConfigError names the key and the file (or the
    command line) of anything that does not fit, or the key, the value and what is allowed for a
    value outside its declared range or choices (:mod:`daaf.config.checks`). Frozen unless ``freeze`` is False.
    """
    opts = list(opts or [])
    if len(opts) % 2:
        raise ConfigError(f"command-line overrides must be KEY VALUE pairs; got an odd number: {opts}")
    imports = config_imports(config_file, opts)
    import_user_modules(imports)
    cfg = get_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    cfg.IMPORTS = imports
    check_config_values(cfg)
    if freeze:
        cfg.freeze()
    return cfg
