import importlib.util

import pytest
import torch

from daaf.config import get_cfg
from daaf.modeling import build_model
from daaf.utils.errors import UserError

HAS_DETECTRON2 = importlib.util.find_spec("detectron2") is not None


def d2_cfg(**overrides):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.NAME", "build_detectron2_backbone", "MODEL.BACKBONE.DEPTH", "50", "MODEL.BACKBONE.PRETRAIN", "False"])
    for key, value in overrides.items():
        cfg.merge_from_list([key.replace("__", "."), str(value)])
    return cfg


@pytest.mark.skipif(HAS_DETECTRON2, reason="detectron2 is installed")
def test_without_detectron2_the_adapter_says_how_to_install_it():
    with pytest.raises(UserError, match="detectron2 is not installed; install it from its repository"):
        build_model(d2_cfg())


@pytest.mark.skipif(not HAS_DETECTRON2, reason="detectron2 is not installed (optional; build it from its repository to run this)")
@pytest.mark.parametrize("last_stride,res5", [(2, (2, 1)), (1, (4, 2))])
def test_detectron2_resnet_as_reid_backbone_with_daaf_branches(last_stride, res5):
    model = build_model(d2_cfg(MODEL__BACKBONE__LAST_STRIDE=last_stride, MODEL__DAAF__BRANCHES="['HAB', 'PAB']"))
    assert type(model.backbone.body).__module__.startswith("detectron2")
    features = model.backbone(torch.zeros(2, 3, 64, 32))
    assert set(features) == {"stem", "res2", "res3", "res4", "res5"}
    assert features["res5"].shape == (2, 2048, *res5)
    assert model.backbone.output_shape()["res5"].stride == (32 if last_stride == 2 else 16)
    batch = {
        "images": torch.randint(0, 255, (4, 3, 64, 32), dtype=torch.uint8), "pids": torch.tensor([0, 0, 1, 1]),
        "masks": torch.ones(4, 64, 32, dtype=torch.uint8), "keypoints": torch.rand(4, 17, 3) * 30, "has_label": torch.ones(4, dtype=torch.bool),
    }  # fmt: skip
    losses = model(batch)
    assert set(losses) == {"loss_triplet", "loss_hab", "loss_pab"} and all(torch.isfinite(v) for v in losses.values())
    hab_encoder = model.branches["HAB"].encoder
    assert list(dict(hab_encoder.named_children())) == ["res3", "res4", "res5"]
    model.eval()
    assert model(batch).shape == (4, 128)
