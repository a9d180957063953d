"""A third-party attention branch with its own config keys, as a researcher writes one outside the
package and names it in a config's IMPORTS (tests/tools/test_user_extension.py):

    IMPORTS: [path/to/user_branch.py]
    MODEL:
      DAAF:
        BRANCHES: [CentreBranch]
      CENTRE_BRANCH:
        WEIGHT: 0.25

The branch predicts, from one backbone stage, a map that should be bright at the image centre; its
loss needs no person labels. It keeps the configured weight in a buffer, so that a checkpoint shows
which value reached it.
"""

import torch
import torch.nn.functional as F
from torch import nn

from daaf.config import CfgNode as CN
from daaf.config import config_extension
from daaf.modeling.attention import ATTENTION_BRANCH_REGISTRY


@config_extension
def add_centre_branch_config(cfg):
    cfg.MODEL.CENTRE_BRANCH = CN()
    cfg.MODEL.CENTRE_BRANCH.WEIGHT = 1.0
    cfg.MODEL.CENTRE_BRANCH.SOURCE = "res4"


if "CentreBranch" not in ATTENTION_BRANCH_REGISTRY:

    @ATTENTION_BRANCH_REGISTRY.register()
    class CentreBranch(nn.Module):
        def __init__(self, cfg, backbone):
            super().__init__()
            self.source = cfg.MODEL.CENTRE_BRANCH.SOURCE
            channels = backbone.output_shape()[self.source].channels
            self.predictor = nn.Conv2d(channels, 1, kernel_size=1)
            self.register_buffer("configured_weight", torch.tensor(float(cfg.MODEL.CENTRE_BRANCH.WEIGHT)))

        @classmethod
        def input_fields(cls, cfg):
            return set()

        def predict(self, features):
            return torch.sigmoid(self.predictor(features[self.source]))

        def forward(self, features, batch):
            prediction = self.predict(features)
            h, w = prediction.shape[-2:]
            ys = torch.linspace(-1, 1, h, device=prediction.device)[:, None]
            xs = torch.linspace(-1, 1, w, device=prediction.device)[None, :]
            target = (1 - (ys**2 + xs**2) / 2).clamp(min=0).expand_as(prediction)
            return {"loss_centre": self.configured_weight * F.binary_cross_entropy(prediction, target)}
