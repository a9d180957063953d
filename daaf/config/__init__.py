from .config import CfgNode, configurable, get_cfg
from .defaults import _C as _DEFAULTS  # noqa: F401 (kept importable for docs/tools)

__all__ = ["CfgNode", "configurable", "get_cfg"]
