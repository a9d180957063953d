from .build import META_ARCH_REGISTRY, build_model, model_input_fields
from .reid_network import ReIDNetwork, branch_parameter_names, count_parameters, strip_branches
