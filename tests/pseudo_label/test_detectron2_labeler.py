"""The detectron2 labeler for real: Keypoint R-CNN + Mask R-CNN built from config files whose
``_BASE_`` is detectron2's model-zoo config (made small: ResNet-18 FPN, narrow heads), with random
weights (nothing can be downloaded here) whose RPN and box head are set to detect, run end to end: on crops in-process, through ``tools/train_net.py --pseudo-label`` killed
half-way and re-run, and as a 2-process gloo shard run. Marked ``detectron2``; what a user without
detectron2 gets runs always."""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from daaf.config import get_cfg
from daaf.pseudo_label import build_pseudo_labeler
from daaf.utils.errors import UserError

from conftest import REPO
from conftest import label_file_content as file_content

KEYPOINT_CONFIG = "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"
MASK_CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
# The model-zoo architectures at a fraction of their cost (each R50 model takes ~2 s to build and
# 0.15 s a crop here; this one 0.1 s and 0.02 s), the same detectron2 code paths.
SMALL_MODEL = """_BASE_: {base}
MODEL:
  RESNETS: {{DEPTH: 18, RES2_OUT_CHANNELS: 64}}
  FPN: {{OUT_CHANNELS: 32}}
  ROI_BOX_HEAD: {{FC_DIM: 64}}
  ROI_KEYPOINT_HEAD: {{CONV_DIMS: [32, 32]}}
  ROI_MASK_HEAD: {{CONV_DIM: 32, NUM_CONV: 2}}
"""


def test_without_detectron2_the_labeler_says_how_to_install_it(hide_detectron2):
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    with pytest.raises(UserError) as info:
        build_pseudo_labeler(cfg)
    message = str(info.value)
    assert message.startswith("PSEUDO_LABEL.NAME Detectron2Labeler: detectron2 is not installed")
    assert "bash tools/install_detectron2.sh" in message and "\n" not in message


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


@pytest.fixture(scope="module")
def detecting_weights(tmp_path_factory):
    """{"kp", "mask": weights path, "kp_config", "mask_config": config path}: small versions of
    both model-zoo configs and weights for them, written once per module."""
    from detectron2 import model_zoo

    folder = tmp_path_factory.mktemp("detectron2_weights")
    paths = {}
    for key, zoo_name in (("kp", KEYPOINT_CONFIG), ("mask", MASK_CONFIG)):
        paths[key + "_config"] = str(folder / f"small_{key}.yaml")
        with open(paths[key + "_config"], "w") as f:
            f.write(SMALL_MODEL.format(base=model_zoo.get_config_file(zoo_name)))
        paths[key] = str(folder / f"{key}.pth")
        _random_weights_that_detect(paths[key + "_config"], paths[key])
    return paths


def labelling_overrides(root, weights, labels_dir):
    """KEY VALUE pairs: the detectron2 labeler on the query split (9 crops of 128x64) of the tiny
    data, at the crops' own size, keeping the 10 best proposals and 1 detection (0.3 s per crop)."""
    return [
        "MODEL.DEVICE",
        "cpu",
        "PSEUDO_LABEL.NAME",
        "Detectron2Labeler",
        "PSEUDO_LABEL.MIN_SIZE_TEST",
        "64",
        "PSEUDO_LABEL.PROPOSALS_PER_IMAGE",
        "10",
        "PSEUDO_LABEL.DETECTIONS_PER_IMAGE",
        "1",
        "PSEUDO_LABEL.KEYPOINT_THRESH",
        "0.0",
        "PSEUDO_LABEL.BATCH_SIZE",
        "1",
        "PSEUDO_LABEL.DETECTRON2.KEYPOINT_CONFIG",
        weights["kp_config"],
        "PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS",
        weights["kp"],
        "PSEUDO_LABEL.DETECTRON2.MASK_CONFIG",
        weights["mask_config"],
        "PSEUDO_LABEL.DETECTRON2.MASK_WEIGHTS",
        weights["mask"],
        "DATASETS.ROOT",
        root,
        "DATASETS.TRAIN",
        "('SyntheticPersons',)",
        "DATASETS.TEST",
        "()",
        "DATASETS.LABELS_DIR",
        str(labels_dir),
        "PSEUDO_LABEL.SPLITS",
        "['query']",
        "DATALOADER.NUM_WORKERS",
        "0",
        "OUTPUT_DIR",
        str(labels_dir) + "_out",
    ]


def labelling_cfg(root, weights, labels_dir):
    cfg = get_cfg()
    cfg.merge_from_list(labelling_overrides(root, weights, labels_dir))
    return cfg


LABEL_FILE = "SyntheticPersons_query.json"


@pytest.fixture(scope="module")
def reference_labels(detecting_weights, synthetic_root, tmp_path_factory):
    """The query split labelled in this process, uninterrupted: the file every other run must give."""
    from daaf.pseudo_label.runner import pseudo_label_from_config

    folder = tmp_path_factory.mktemp("reference_labels")
    summaries = pseudo_label_from_config(labelling_cfg(synthetic_root, detecting_weights, folder))
    return {"path": str(folder / LABEL_FILE), "summary": summaries["SyntheticPersons_query"]}


@pytest.mark.detectron2
def test_detectron2_labeler_end_to_end_on_synthetic_crops(detecting_weights, synthetic_root, reference_labels):
    from pycocotools.coco import COCO

    from daaf.data import get_dataset, read_image

    labeler = build_pseudo_labeler(labelling_cfg(synthetic_root, detecting_weights, "unused"))
    assert labeler.info()["keypoint_config"] == detecting_weights["kp_config"] and detecting_weights["kp"] in labeler.weights
    assert type(labeler.keypoint_model).__module__.startswith("detectron2")

    records = get_dataset("SyntheticPersons", synthetic_root).query
    images = [read_image(r["file_name"]) for r in records[:4]]
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

    summary = reference_labels["summary"]
    assert summary["images"] == len(records) and summary["labelled"] == len(records)
    coco = COCO(reference_labels["path"])
    assert coco.dataset["info"]["labeler"] == "Detectron2Labeler"
    assert len(coco.getAnnIds()) == len(records)
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.imgs[ann["image_id"]]
        assert coco.annToMask(ann).shape == (image["height"], image["width"])
        assert len(ann["keypoints"]) == 51 and len(ann["keypoint_scores"]) == 17


@pytest.mark.detectron2
@pytest.mark.usefixtures("cpu_processes")
def test_train_net_pseudo_label_killed_half_way_then_rerun_on_two_gloo_processes_gives_the_uninterrupted_file(
    detecting_weights, synthetic_root, reference_labels, tmp_path
):
    """kill -9 of a 1-process ``--pseudo-label`` run half-way, then ``--num-gpus 2`` (two gloo
    processes on a CPU) labels what is left, sharded: the file equals the uninterrupted 1-process one."""
    labels = tmp_path / "labels"
    overrides = labelling_overrides(synthetic_root, detecting_weights, labels)
    command = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--pseudo-label"]
    proc = subprocess.Popen(command + overrides, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = labels / (LABEL_FILE + ".partial-rank0.jsonl")
    deadline = time.time() + 240
    while not (partial.exists() and partial.read_text().count("\n") >= 4):  # header + 3 of 9 crops
        assert proc.poll() is None and time.time() < deadline, "labelling ended before it could be killed"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (labels / LABEL_FILE).exists()
    labelled_before = partial.read_text().count("\n") - 1
    assert 3 <= labelled_before < 9

    rerun = subprocess.run(command + ["--num-gpus", "2", "--dist-url", "auto"] + overrides, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert file_content(labels / LABEL_FILE) == file_content(reference_labels["path"])
    assert not glob.glob(str(labels / "*partial*"))
    log = (tmp_path / "labels_out" / "log.txt").read_text()
    assert f"resuming; {labelled_before} of 9 images were labelled before" in log
    assert "This is process 0 of 2" in log and (tmp_path / "labels_out" / "log.txt.rank1").exists()


@pytest.mark.detectron2
def test_unloadable_detectron2_weights_are_a_one_line_error(tmp_path):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS", str(tmp_path / "missing.pkl")])
    with pytest.raises(UserError, match=r"PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS: cannot load weights .*missing.pkl"):
        build_pseudo_labeler(cfg)


@pytest.mark.detectron2
def test_unknown_model_zoo_config_is_named():
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "MODEL.DEVICE",
            "cpu",
            "PSEUDO_LABEL.DETECTRON2.KEYPOINT_CONFIG",
            "COCO-Keypoints/nope.yaml",
            "PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS",
            "x.pkl",
        ]
    )
    with pytest.raises(UserError, match="'COCO-Keypoints/nope.yaml' is neither a file nor a config of detectron2's model zoo"):
        build_pseudo_labeler(cfg)


@pytest.mark.detectron2
@pytest.mark.parametrize("mask_weights", ["missing.pkl", "http://127.0.0.1:9/mask_rcnn.pkl"], ids=["file", "url"])
def test_unreachable_weights_fail_before_any_model_is_built(detecting_weights, tmp_path, monkeypatch, mask_weights):
    from daaf.pseudo_label import detectron2_labeler

    built = []
    monkeypatch.setattr(detectron2_labeler, "build_detectron2_model", lambda *a, **k: built.append(a))
    weights = mask_weights if "://" in mask_weights else str(tmp_path / mask_weights)
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "MODEL.DEVICE",
            "cpu",
            "PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS",
            detecting_weights["kp"],
            "PSEUDO_LABEL.DETECTRON2.MASK_WEIGHTS",
            weights,
        ]
    )
    with pytest.raises(UserError) as info:
        build_pseudo_labeler(cfg)
    assert str(info.value).startswith(f"PSEUDO_LABEL.DETECTRON2.MASK_WEIGHTS: cannot load weights '{weights}' (")
    assert "\n" not in str(info.value) and built == []
