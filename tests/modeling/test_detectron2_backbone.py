"""detectron2's ResNet as a DAAF backbone (MODEL.BACKBONE.NAME build_detectron2_backbone): DAAF
training steps through the trainer, and a backbone file that detectron2's DetectionCheckpointer
loads. Marked ``detectron2``; what a user without detectron2 gets runs always."""

import json
import math
import os

import pytest
import torch

from daaf.config import get_cfg
from daaf.modeling import build_model
from daaf.utils.errors import UserError

from conftest import key_values, make_batch


def d2_cfg(**overrides):
    cfg = get_cfg()
    cfg.merge_from_list(
        key_values(
            {
                "MODEL.DEVICE": "cpu",
                "MODEL.BACKBONE.NAME": "build_detectron2_backbone",
                "MODEL.BACKBONE.DEPTH": 50,
                "MODEL.BACKBONE.PRETRAIN": False,
            }
        )
    )
    for key, value in overrides.items():
        cfg.merge_from_list([key.replace("__", "."), str(value)])
    return cfg


def test_without_detectron2_the_adapter_says_how_to_install_it(hide_detectron2):
    with pytest.raises(UserError, match=r"detectron2 is not installed; build it from its repository: bash tools/install_detectron2.sh"):
        build_model(d2_cfg())


@pytest.mark.detectron2
@pytest.mark.parametrize("last_stride,res5", [(2, (2, 1)), (1, (4, 2))])
def test_detectron2_resnet_as_reid_backbone_with_daaf_branches(last_stride, res5):
    model = build_model(d2_cfg(MODEL__BACKBONE__LAST_STRIDE=last_stride, MODEL__DAAF__BRANCHES="['HAB', 'PAB']"))
    assert type(model.backbone.body).__module__.startswith("detectron2")
    features = model.backbone(torch.zeros(2, 3, 64, 32))
    assert set(features) == {"stem", "res2", "res3", "res4", "res5"}
    assert features["res5"].shape == (2, 2048, *res5)
    assert model.backbone.output_shape()["res5"].stride == (32 if last_stride == 2 else 16)
    batch = make_batch(
        torch.randint(0, 255, (4, 3, 64, 32), dtype=torch.uint8),
        [0, 0, 1, 1],
        masks=torch.ones(4, 64, 32, dtype=torch.uint8),
        keypoints=torch.rand(4, 17, 3) * 30,
        has_label=torch.ones(4, dtype=torch.bool),
    )
    losses = model(batch)
    assert set(losses) == {"loss_triplet", "loss_hab", "loss_pab"} and all(torch.isfinite(v) for v in losses.values())
    hab_encoder = model.branches["HAB"].encoder
    assert list(dict(hab_encoder.named_children())) == ["res3", "res4", "res5"]
    model.eval()
    assert model(batch).shape == (4, 128)


@pytest.mark.detectron2
def test_detectron2_backbone_trains_daaf_steps_and_its_export_loads_in_detectron2(tiny_cfg, tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg as get_d2_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling import build_backbone as build_d2_backbone

    from daaf.engine import DefaultTrainer
    from daaf.engine.export import ExportableReID, detectron2_max_abs_diff, example_images, export_detectron2_backbone

    cfg = tiny_cfg.clone()
    cfg.merge_from_list(
        key_values(
            {
                "MODEL.BACKBONE.NAME": "build_detectron2_backbone",
                "MODEL.DAAF.BRANCHES": "['HAB', 'PAB']",
                "DATASETS.TEST": "()",
                "SOLVER.MAX_ITER": 3,
            }
        )
    )
    trainer = DefaultTrainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.backbone.body.state_dict().items()}
    trainer.train()
    with open(os.path.join(cfg.OUTPUT_DIR, "metrics.json")) as f:
        steps = [json.loads(line) for line in f if "total_loss" in line]
    assert [s["iteration"] for s in steps] == [0, 1, 2]
    assert all(math.isfinite(s[k]) and s[k] > 0 for s in steps for k in ("loss_triplet", "loss_hab", "loss_pab"))
    after = trainer.model.backbone.body.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the detectron2 ResNet trained

    # detectron2's own checkpointer loads the exported backbone into the same detectron2 backbone ...
    model = ExportableReID(trainer.model)
    path = str(tmp_path / "backbone_detectron2.pth")
    export_detectron2_backbone(model, path)
    assert detectron2_max_abs_diff(path, model, example_images(64, 32)) == 0.0
    # ... and, by suffix matching, into the bottom-up ResNet of a detectron2 FPN backbone
    d2cfg = get_d2_cfg()
    d2cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    d2cfg.MODEL.RESNETS.DEPTH = 18
    d2cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    d2cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    d2cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    fpn = build_d2_backbone(d2cfg, ShapeSpec(channels=3))
    DetectionCheckpointer(fpn).load(path)
    loaded = fpn.bottom_up.state_dict()
    assert all(torch.equal(loaded[k], after[k]) for k in after if not k.endswith("num_batches_tracked"))


def test_detectron2_export_of_another_backbone_is_a_one_line_error(tiny_cfg, tmp_path):
    from daaf.engine.export import ExportableReID, export_detectron2_backbone

    with pytest.raises(UserError, match="--format detectron2 needs a detectron2 backbone .* this model's is ResNet"):
        export_detectron2_backbone(ExportableReID(build_model(tiny_cfg)), str(tmp_path / "b.pth"))
    assert not (tmp_path / "b.pth").exists()


@pytest.mark.detectron2
def test_pretrain_without_a_path_warns_and_an_unreachable_path_is_one_line(tmp_path, caplog):
    import logging

    daaf_logger = logging.getLogger("daaf")  # does not propagate once a run has set up logging
    daaf_logger.addHandler(caplog.handler)
    try:
        build_model(d2_cfg(MODEL__BACKBONE__DEPTH=18, MODEL__BACKBONE__PRETRAIN=True, MODEL__BACKBONE__PRETRAIN_PATH=""))
    finally:
        daaf_logger.removeHandler(caplog.handler)
    assert (
        "MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty: detectron2's backbone stays randomly initialised"
        in caplog.text
    )
    for path in (str(tmp_path / "R-18.pkl"), "http://127.0.0.1:9/R-18.pkl"):
        with pytest.raises(UserError) as info:
            build_model(d2_cfg(MODEL__BACKBONE__DEPTH=18, MODEL__BACKBONE__PRETRAIN=True, MODEL__BACKBONE__PRETRAIN_PATH=path))
        assert str(info.value).startswith(f"MODEL.BACKBONE.PRETRAIN_PATH: cannot load weights '{path}' (") and "\n" not in str(info.value)


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/daaf_pickle_payload_ran",))


@pytest.mark.detectron2
def test_pkl_weights_load_without_unpickling_code(tmp_path):
    import pickle

    from daaf.utils.detectron2_zoo import load_detectron2_weights

    model = build_model(d2_cfg(MODEL__BACKBONE__DEPTH=18)).backbone.body
    state = {k: v.numpy() + 1.0 for k, v in model.state_dict().items() if v.is_floating_point()}
    good = tmp_path / "R-18.pkl"
    with open(good, "wb") as f:  # detectron2's model-zoo format: numpy arrays, "__author__"
        pickle.dump({"model": state, "__author__": "test"}, f)
    fresh = build_model(d2_cfg(MODEL__BACKBONE__DEPTH=18)).backbone.body
    load_detectron2_weights(fresh, str(good), "MODEL.BACKBONE.PRETRAIN_PATH")
    assert all(torch.equal(fresh.state_dict()[k], torch.from_numpy(v)) for k, v in state.items())

    evil = tmp_path / "evil.pkl"
    with open(evil, "wb") as f:
        pickle.dump({"model": {"stem.conv1.weight": _RunsCode()}, "__author__": "x"}, f)
    if os.path.exists("/tmp/daaf_pickle_payload_ran"):
        os.remove("/tmp/daaf_pickle_payload_ran")
    with pytest.raises(UserError, match=r"MODEL.BACKBONE.PRETRAIN_PATH: refused to unpickle 'posix.system'"):
        load_detectron2_weights(fresh, str(evil), "MODEL.BACKBONE.PRETRAIN_PATH")
    assert not os.path.exists("/tmp/daaf_pickle_payload_ran")
