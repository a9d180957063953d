from .build import build_config, config_imports
from .config import CfgNode, config_file_chain, configurable, get_cfg
from .extensions import apply_config_extensions, config_extension, flatten_config, registered_config_extensions
from .imports import import_user_modules

__all__ = [
    "CfgNode",
    "build_config",
    "config_extension",
    "config_file_chain",
    "config_imports",
    "flatten_config",
    "configurable",
    "get_cfg",
    "import_user_modules",
    "apply_config_extensions",
    "registered_config_extensions",
]
