import logging
import textwrap

import pytest
import torch

from daaf.config import get_cfg, import_user_modules
from daaf.modeling import BACKBONE_REGISTRY, build_model
from daaf.utils.errors import ConfigError

from conftest import key_values, make_batch

USER_MODULE = textwrap.dedent(
    '''
    import torch
    from torch import nn
    from daaf.modeling import BACKBONE_REGISTRY, REID_HEADS_REGISTRY, Backbone, ShapeSpec

    @BACKBONE_REGISTRY.register()
    class UserTinyBackbone(Backbone):
        """A user's backbone living outside the library."""
        def __init__(self, cfg):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        def forward(self, x):
            out = self.conv(x)
            return {"stem": out, "res5": out}
        def output_shape(self):
            return {"stem": ShapeSpec(8, 4), "res5": ShapeSpec(8, 4)}

    @REID_HEADS_REGISTRY.register()
    class UserMaxHead(nn.Module):
        def __init__(self, cfg, input_shape):
            super().__init__()
            self.feature_dim = input_shape.channels
        def forward(self, features):
            pooled = features.amax(dim=(2, 3))
            return {"features": pooled} if self.training else pooled
    '''
)


def test_user_components_registered_in_their_own_module_are_built_from_yaml(tmp_path):
    module_path = tmp_path / "my_reid_components.py"
    module_path.write_text(USER_MODULE)
    config_path = tmp_path / "user.yaml"
    config_path.write_text(
        f"IMPORTS: ['{module_path}']\nMODEL:\n  DEVICE: cpu\n  BACKBONE:\n    NAME: UserTinyBackbone\n  HEADS:\n    NAME: UserMaxHead\n"
    )
    cfg = get_cfg()
    cfg.merge_from_file(str(config_path))
    import_user_modules(cfg.IMPORTS)
    model = build_model(cfg)
    assert type(model.backbone).__name__ == "UserTinyBackbone"
    assert type(model.heads).__name__ == "UserMaxHead"
    model.eval()
    out = model(torch.zeros(2, 3, 64, 32, dtype=torch.uint8))
    assert out.shape == (2, 8)
    model.train()
    losses = model(make_batch(torch.randint(0, 255, (4, 3, 64, 32), dtype=torch.uint8), [0, 0, 1, 1]))
    assert set(losses) == {"loss_triplet"} and torch.isfinite(losses["loss_triplet"])
    # importing again (e.g. at --resume) is harmless
    import_user_modules(cfg.IMPORTS)
    assert "UserTinyBackbone" in BACKBONE_REGISTRY


def test_unknown_registered_name_lists_key_and_known_names():
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.NAME = "NoSuchBackbone"
    with pytest.raises(ConfigError) as info:
        build_model(cfg)
    assert "MODEL.BACKBONE.NAME" in str(info.value) and "build_daaf_resnet_backbone" in str(info.value)


def test_missing_import_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        import_user_modules(["no_such_module_xyz"])
    with pytest.raises(ConfigError, match="missing.py"):
        import_user_modules([str(tmp_path / "missing.py")])


def test_the_old_name_of_the_resnet_backbone_still_works_with_a_deprecation_line(caplog):
    from daaf.modeling.backbones import ResNet

    cfg = get_cfg()
    cfg.merge_from_list(
        key_values(
            {
                "MODEL.DEVICE": "cpu",
                "MODEL.BACKBONE.DEPTH": 18,
                "MODEL.BACKBONE.PRETRAIN": False,
                "MODEL.BACKBONE.NAME": "build_resnet_backbone",
            }
        )
    )
    daaf_logger = logging.getLogger("daaf")  # does not propagate once a run has set up logging
    daaf_logger.addHandler(caplog.handler)
    try:
        model = build_model(cfg)
    finally:
        daaf_logger.removeHandler(caplog.handler)
    assert type(model.backbone) is ResNet
    assert "MODEL.BACKBONE.NAME: 'build_resnet_backbone' is deprecated; it is now 'build_daaf_resnet_backbone'" in caplog.text
    # the alias is not listed among the registered names
    cfg.MODEL.BACKBONE.NAME = "NoSuchBackbone"
    with pytest.raises(ConfigError) as info:
        build_model(cfg)
    assert "'build_resnet_backbone'" not in str(info.value) and ", build_resnet_backbone" not in str(info.value)
