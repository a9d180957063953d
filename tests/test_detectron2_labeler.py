"""The detectron2 labeler: Keypoint R-CNN + Mask R-CNN from detectron2's model zoo configs, with
random weights (no download), run end to end on synthetic crops. Skipped without detectron2."""

import importlib.util

import numpy as np
import pytest
import torch

from daaf.config import get_cfg
from daaf.pseudo_label import build_pseudo_labeler
from daaf.utils.errors import UserError

HAS_DETECTRON2 = importlib.util.find_spec("detectron2") is not None
needs_detectron2 = pytest.mark.skipif(
    not HAS_DETECTRON2, reason="detectron2 is not installed (optional; build it from its repository to run this)"
)
KEYPOINT_CONFIG = "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"
MASK_CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"


@pytest.mark.skipif(HAS_DETECTRON2, reason="detectron2 is installed")
def test_without_detectron2_the_labeler_says_how_to_install_it():
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    with pytest.raises(UserError) as info:
        build_pseudo_labeler(cfg)
    message = str(info.value)
    assert message.startswith("PSEUDO_LABEL.NAME Detectron2Labeler: detectron2 is not installed")
    assert "pip install 'git+https://github.com/facebookresearch/detectron2.git'" in message and "\n" not in message


def _random_weights_that_detect(config, path):
    """Random model-zoo weights whose RPN and box head return the anchors as confident person
    detections (random weights alone detect nothing), saved where the config can load them."""
    from daaf.pseudo_label import build_detectron2_model

    torch.manual_seed(0)
    model = build_detectron2_model(config, None, "cpu", 0.5, "test")
    with torch.no_grad():
        deltas = model.proposal_generator.rpn_head.anchor_deltas
        deltas.weight.zero_(), deltas.bias.zero_()
        predictor = model.roi_heads.box_predictor
        predictor.bbox_pred.weight.zero_(), predictor.bbox_pred.bias.zero_()
        predictor.cls_score.weight.zero_()
        predictor.cls_score.bias.fill_(-5.0)
        predictor.cls_score.bias[0] = 5.0  # class 0 = person
        # Random backbones give activations in the thousands; keep the last layers of the keypoint
        # and mask heads finite (detectron2 asserts on NaN heatmaps): flat maps, masks = boxes.
        for head, layer, bias in (("keypoint_head", "score_lowres", 0.0), ("mask_head", "predictor", 5.0)):
            if hasattr(model.roi_heads, head):
                last = getattr(getattr(model.roi_heads, head), layer)
                last.weight.zero_(), last.bias.fill_(bias)
    torch.save({"model": model.state_dict()}, path)


@needs_detectron2
def test_detectron2_labeler_end_to_end_on_synthetic_crops(synthetic_root, tmp_path):
    from pycocotools.coco import COCO

    from daaf.data import get_dataset
    from daaf.pseudo_label.runner import label_records

    _random_weights_that_detect(KEYPOINT_CONFIG, str(tmp_path / "kp.pth"))
    _random_weights_that_detect(MASK_CONFIG, str(tmp_path / "mask.pth"))
    cfg = get_cfg()
    cfg.merge_from_list(
        ["MODEL.DEVICE", "cpu", "PSEUDO_LABEL.MIN_SIZE_TEST", "160", "PSEUDO_LABEL.KEYPOINT_THRESH", "0.0",
         "PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS", str(tmp_path / "kp.pth"),
         "PSEUDO_LABEL.DETECTRON2.MASK_WEIGHTS", str(tmp_path / "mask.pth")]
    )  # fmt: skip
    labeler = build_pseudo_labeler(cfg)
    assert labeler.info()["keypoint_config"] == KEYPOINT_CONFIG and str(tmp_path / "kp.pth") in labeler.weights

    records = get_dataset("SyntheticPersons", synthetic_root).query[:4]
    from daaf.data import read_image

    images = [read_image(r["file_name"]) for r in records]
    people = labeler(images)
    assert len(people) == 4
    for image, person in zip(images, people):
        height, width = image.shape[:2]
        assert person is not None
        assert person.mask.shape == (height, width) and person.mask.dtype == np.uint8 and person.mask.any()
        assert person.keypoints.shape == (17, 3) and person.keypoint_scores.shape == (17,)
        x0, y0, x1, y1 = person.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert ((person.keypoints[:, 0] >= x0 - 1) & (person.keypoints[:, 0] <= x1 + 1)).all()
        assert ((person.keypoints[:, 1] >= y0 - 1) & (person.keypoints[:, 1] <= y1 + 1)).all()
        assert set(np.unique(person.keypoints[:, 2])) <= {0.0, 2.0} and 0.5 <= person.score <= 1.0

    out = str(tmp_path / "labels.json")
    summary = label_records(labeler, records, out, labeler_name="Detectron2Labeler", dataset="q", batch_size=2, progress=False)
    assert summary["images"] == 4 and summary["labelled"] == 4
    coco = COCO(out)
    assert coco.dataset["info"]["labeler"] == "Detectron2Labeler"
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.imgs[ann["image_id"]]
        assert coco.annToMask(ann).shape == (image["height"], image["width"])
        assert len(ann["keypoints"]) == 51 and len(ann["keypoint_scores"]) == 17


@needs_detectron2
def test_unloadable_detectron2_weights_are_a_one_line_error(tmp_path):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS", str(tmp_path / "missing.pkl")])
    with pytest.raises(UserError, match=r"PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS: cannot load weights .*missing.pkl"):
        build_pseudo_labeler(cfg)


@needs_detectron2
def test_unknown_model_zoo_config_is_named():
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "PSEUDO_LABEL.DETECTRON2.KEYPOINT_CONFIG", "COCO-Keypoints/nope.yaml",
                         "PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS", "x.pkl"])  # fmt: skip
    with pytest.raises(UserError, match="'COCO-Keypoints/nope.yaml' is neither a file nor a config of detectron2's model zoo"):
        build_pseudo_labeler(cfg)
