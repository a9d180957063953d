from .build import META_ARCH_REGISTRY, build_model, model_input_fields
from .reid_network import ReIDNetwork, count_parameters, strip_branches
