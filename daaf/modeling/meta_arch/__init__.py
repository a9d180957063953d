from .build import META_ARCH_REGISTRY, build_model
from .reid_network import ReIDNetwork, branch_parameter_names, strip_branches
