from .config import CfgNode, configurable, get_cfg
from .imports import import_user_modules

__all__ = ["CfgNode", "configurable", "get_cfg", "import_user_modules"]
