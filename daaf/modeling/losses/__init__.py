from .build import LOSS_REGISTRY, build_losses
from .classification import CrossEntropyLoss
from .metric import CenterLoss, TripletLoss, euclidean_dist, hard_example_mining
