"""Pseudo-labelling: the person-selection rule, the resumable sharded labelling job, the label
file, the missing-label path of training, the quality check. A test-double labeler
(toy_components.ToyPersonLabeler) stands in for detectron2 here; test_detectron2_labeler.py runs
the real one when detectron2 is installed."""

import glob
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from daaf.data.person_labels import decode_mask, load_label_file, make_annotation, write_label_file
from daaf.engine import launch
from daaf.pseudo_label import box_iou, match_box, select_person
from daaf.pseudo_label.labelling import label_records
from daaf.pseudo_label.quality import compare_label_files
from daaf.pseudo_label.runner import pseudo_label_from_config
from daaf.pseudo_label.train_labels import ensure_train_labels
from daaf.utils.errors import DatasetError, UserError

import toy_components  # noqa: F401  (registers ToyPersonLabeler)
from conftest import REPO, TESTS, load_tool
from conftest import label_file_content as file_content

TOY_MODULE = os.path.join(TESTS, "toy_components.py")


def labelling_cfg(tiny_cfg, labels_dir, **extra):
    cfg = tiny_cfg.clone()
    cfg.merge_from_list(
        [
            "PSEUDO_LABEL.NAME",
            "ToyPersonLabeler",
            "DATASETS.LABELS_DIR",
            str(labels_dir),
            "PSEUDO_LABEL.BATCH_SIZE",
            "3",
            "IMPORTS",
            f"['{TOY_MODULE}']",
            "PSEUDO_LABEL.KEYPOINT_THRESH",
            "0.3",
        ]
    )
    for key, value in extra.items():
        cfg.merge_from_list([key, str(value)])
    return cfg


# ---- the person-selection rule ----


def test_the_person_filling_the_crop_beats_a_higher_scoring_bystander():
    # crop 128x64; a centred person (score 0.8) and a bystander cut by the edge (score 0.99)
    boxes = np.array([[40, 10, 64, 128], [4, 4, 60, 124]], dtype=float)
    assert select_person(boxes, [0.99, 0.8], 128, 64) == 1
    # equal score x coverage: the higher score wins, then the earlier detection
    same = np.array([[0, 0, 64, 128], [0, 0, 64, 128], [0, 0, 64, 128]], dtype=float)
    assert select_person(same, [0.7, 0.9, 0.9], 128, 64) == 1
    # the threshold removes candidates; nobody left -> None
    assert select_person(boxes, [0.99, 0.4], 128, 64, score_thresh=0.5) == 0
    assert select_person(boxes, [0.3, 0.4], 128, 64, score_thresh=0.5) is None
    assert select_person(np.zeros((0, 4)), [], 128, 64) is None


def test_box_iou_and_mask_matching():
    a = np.array([[0, 0, 10, 10]], dtype=float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 1.0, 0.0]])
    assert match_box(a[0], b, 0.5) == 1
    assert match_box(a[0], b[[0, 2]], 0.5) is None  # best IoU 1/3 is below the threshold
    assert match_box(a[0], np.zeros((0, 4)), 0.5) is None


# ---- the labelling job ----


def test_pseudo_label_writes_coco_files_that_pycocotools_loads(tiny_cfg, tmp_path):
    cfg = labelling_cfg(tiny_cfg, tmp_path / "labels", **{"PSEUDO_LABEL.SPLITS": "['train', 'query']"})
    summaries = pseudo_label_from_config(cfg)
    assert set(summaries) == {"SyntheticPersons_train", "SyntheticPersons_query"}
    assert sorted(os.listdir(tmp_path / "labels")) == ["SyntheticPersons_query.json", "SyntheticPersons_train.json"]

    path = str(tmp_path / "labels" / "SyntheticPersons_train.json")
    coco = COCO(path)
    truth = load_label_file(os.path.join(tiny_cfg.DATASETS.ROOT, "daaf_labels", "SyntheticPersons_train.json"))
    assert sorted(img["file_name"] for img in coco.dataset["images"]) == sorted(truth)
    assert coco.dataset["info"]["labeler"] == "ToyPersonLabeler"
    assert coco.dataset["info"]["weights"] == "toy-weights"
    assert coco.dataset["info"]["labeler_config"] == {"keypoint_thresh": 0.3, "min_area": 0.05}
    assert coco.dataset["categories"][0]["keypoints"][0] == "nose"
    labeler = toy_components.ToyPersonLabeler(cfg)
    root = os.path.join(tiny_cfg.DATASETS.ROOT, "SyntheticPersons")
    assert len(coco.getAnnIds()) > 0
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.imgs[ann["image_id"]]
        rgb = cv2.imread(os.path.join(root, image["file_name"]))[:, :, ::-1]
        expected = labeler.person(rgb)
        assert (image["height"], image["width"]) == rgb.shape[:2]
        np.testing.assert_array_equal(coco.annToMask(ann), expected.mask)  # RLE round trip
        keypoints = np.asarray(ann["keypoints"]).reshape(17, 3)
        np.testing.assert_array_equal(keypoints[:, 2], np.where(expected.keypoint_scores >= 0.3, 2, 0))
        np.testing.assert_allclose(ann["keypoint_scores"], expected.keypoint_scores, atol=1e-4)
        x0, y0, x1, y1 = expected.box
        assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0] and ann["score"] == pytest.approx(expected.score)
    s = summaries["SyntheticPersons_train"]
    assert s["images"] == len(truth) and s["labelled"] + s["no_person"] == s["images"]
    assert s["labelled"] == len(coco.getAnnIds())
    assert not glob.glob(str(tmp_path / "labels" / "*partial*"))


def _write_crops(folder, crops):
    records = []
    for name, image in crops.items():
        path = os.path.join(folder, name)
        cv2.imwrite(path, image[:, :, ::-1])
        records.append({"file_name": path, "relpath": name})
    return records


def test_crops_without_a_person_are_listed_without_annotation(tmp_path):
    person = np.full((64, 32, 3), 30, np.uint8)
    person[10:60, 8:24] = 220
    records = _write_crops(str(tmp_path), {"a.png": person, "empty.png": np.full((64, 32, 3), 30, np.uint8)})
    labeler = toy_components.ToyPersonLabeler(labelling_cfg_for_unit())
    out = str(tmp_path / "labels.json")
    summary = label_records(labeler, records, out, labeler_name="ToyPersonLabeler", dataset="toy", progress=False)
    assert summary["images"] == 2 and summary["labelled"] == 1 and summary["no_person"] == 1
    labels = load_label_file(out)
    assert labels["empty.png"] is None
    mask = decode_mask(labels["a.png"]["segmentation"])
    assert mask.sum() == 50 * 16 and mask[10:60, 8:24].all()


def labelling_cfg_for_unit():
    from daaf.config import get_cfg

    return get_cfg()


def test_unreadable_image_error_names_the_file(tmp_path):
    records = _write_crops(str(tmp_path), {"a.png": np.zeros((8, 8, 3), np.uint8)})
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    records.append({"file_name": str(tmp_path / "broken.jpg"), "relpath": "broken.jpg"})
    labeler = toy_components.ToyPersonLabeler(labelling_cfg_for_unit())
    with pytest.raises(DatasetError, match="broken.jpg"):
        label_records(labeler, records, str(tmp_path / "l.json"), labeler_name="t", dataset="toy", progress=False)
    assert not (tmp_path / "l.json").exists()


def test_existing_file_is_kept_unless_overwrite(tiny_cfg, tmp_path, monkeypatch):
    log = tmp_path / "calls.txt"
    monkeypatch.setenv("TOY_LABEL_LOG", str(log))
    cfg = labelling_cfg(tiny_cfg, tmp_path / "labels", **{"PSEUDO_LABEL.SPLITS": "['query']"})
    pseudo_label_from_config(cfg)
    first = sum(int(n) for n in log.read_text().split())
    pseudo_label_from_config(cfg)
    assert sum(int(n) for n in log.read_text().split()) == first  # not recomputed
    cfg.merge_from_list(["PSEUDO_LABEL.OVERWRITE", "True"])
    pseudo_label_from_config(cfg)
    assert sum(int(n) for n in log.read_text().split()) == 2 * first


def test_partial_progress_of_other_labeler_settings_is_refused(tiny_cfg, tmp_path):
    cfg = labelling_cfg(tiny_cfg, tmp_path / "labels", **{"PSEUDO_LABEL.SPLITS": "['query']"})
    os.makedirs(tmp_path / "labels")
    partial = tmp_path / "labels" / "SyntheticPersons_query.json.partial-rank0.jsonl"
    partial.write_text(json.dumps({"header": {"labeler": "ToyPersonLabeler", "labeler_config": {"keypoint_thresh": 0.9}}}) + "\n")
    with pytest.raises(UserError, match="other labeler settings"):
        pseudo_label_from_config(cfg)
    assert partial.exists()  # the user's partial progress is not thrown away


def test_an_exception_inside_the_labeler_is_one_line_and_the_saved_progress_resumes(tiny_cfg, tmp_path, monkeypatch):
    from daaf.pseudo_label.targets import labeling_targets

    extra = {"PSEUDO_LABEL.SPLITS": "['query']", "PSEUDO_LABEL.BATCH_SIZE": "1"}
    cfg = labelling_cfg(tiny_cfg, tmp_path / "labels", **extra)
    ((_, _, records, path),) = labeling_targets(cfg)
    monkeypatch.setattr(toy_components.ToyPersonLabeler, "calls", 0)
    monkeypatch.setenv("TOY_LABEL_FAIL_CALL", "5")
    with pytest.raises(UserError) as info:
        pseudo_label_from_config(cfg)
    assert str(info.value) == (
        f"labeler ToyPersonLabeler failed on {records[4]['file_name']}: AssertionError: no message "
        "(images labelled before it are saved; a re-run goes on from there)"
    )
    partial = path + ".partial-rank0.jsonl"
    assert not os.path.exists(path) and open(partial).read().count("\n") == 1 + 4  # header + 4 images

    monkeypatch.delenv("TOY_LABEL_FAIL_CALL")
    pseudo_label_from_config(cfg)
    pseudo_label_from_config(labelling_cfg(tiny_cfg, tmp_path / "reference", **extra))
    assert file_content(path) == file_content(tmp_path / "reference" / os.path.basename(path))


def _pseudo_label_args(tiny_cfg, labels_dir):
    return [
        sys.executable,
        os.path.join(REPO, "tools", "train_net.py"),
        "--pseudo-label",
        "MODEL.DEVICE",
        "cpu",
        "IMPORTS",
        f"['{TOY_MODULE}']",
        "PSEUDO_LABEL.NAME",
        "ToyPersonLabeler",
        "DATASETS.ROOT",
        tiny_cfg.DATASETS.ROOT,
        "DATASETS.TRAIN",
        "('SyntheticPersons',)",
        "DATASETS.TEST",
        "()",
        "DATASETS.LABELS_DIR",
        str(labels_dir),
        "PSEUDO_LABEL.SPLITS",
        "['train']",
        "PSEUDO_LABEL.BATCH_SIZE",
        "2",
        "DATALOADER.NUM_WORKERS",
        "0",
        "OUTPUT_DIR",
        str(labels_dir) + "_out",
    ]


def test_kill_mid_run_then_rerun_gives_the_uninterrupted_file(tiny_cfg, tmp_path):
    from daaf.config import get_cfg

    reference_cfg = get_cfg()  # the uninterrupted run, in this process: the same KEY VALUE settings
    reference_cfg.merge_from_list(_pseudo_label_args(tiny_cfg, tmp_path / "ref")[3:])
    pseudo_label_from_config(reference_cfg)
    log = tmp_path / "calls.txt"
    args = _pseudo_label_args(tiny_cfg, tmp_path / "killed")
    proc = subprocess.Popen(
        args, env=dict(os.environ, TOY_LABEL_SLEEP="0.1", TOY_LABEL_LOG=str(log)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    partial = tmp_path / "killed" / "SyntheticPersons_train.json.partial-rank0.jsonl"
    deadline = time.time() + 120
    while not (partial.exists() and partial.read_text().count("\n") >= 5):
        assert proc.poll() is None and time.time() < deadline, "labelling ended before it could be killed"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "SyntheticPersons_train.json").exists()
    with open(partial, "a") as f:
        f.write('{"file_name": "bounding_box_train/torn')  # a line torn by the kill

    rerun = subprocess.run(args, env=dict(os.environ, TOY_LABEL_LOG=str(log)), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    final = tmp_path / "killed" / "SyntheticPersons_train.json"
    assert file_content(final) == file_content(tmp_path / "ref" / "SyntheticPersons_train.json")
    assert not glob.glob(str(tmp_path / "killed" / "*partial*"))
    total = len(load_label_file(str(final)))
    labelled = sum(int(n) for n in log.read_text().split())
    assert total <= labelled <= total + 2  # at most the batch in flight (2 images) was labelled twice


def _labelling_worker(cfg):
    pseudo_label_from_config(cfg)


@pytest.mark.usefixtures("cpu_processes")
def test_two_process_sharded_run_equals_one_process_run(tiny_cfg, tmp_path):
    one = labelling_cfg(tiny_cfg, tmp_path / "one", **{"PSEUDO_LABEL.SPLITS": "['train', 'gallery']"})
    two = labelling_cfg(tiny_cfg, tmp_path / "two", **{"PSEUDO_LABEL.SPLITS": "['train', 'gallery']"})
    pseudo_label_from_config(one)
    launch(_labelling_worker, 2, dist_url="auto", args=(two,))
    for split in ("train", "gallery"):
        name = f"SyntheticPersons_{split}.json"
        assert file_content(tmp_path / "two" / name) == file_content(tmp_path / "one" / name)
    assert not glob.glob(str(tmp_path / "two" / "*partial*"))


# ---- training with missing labels ----


def daaf_train_args(tiny_cfg, labels_dir, *extra):
    return [
        sys.executable,
        os.path.join(REPO, "tools", "train_net.py"),
        "--config-file",
        os.path.join(REPO, "configs", "Synthetic", "daaf_trinet_R18.yaml"),
        "MODEL.DEVICE",
        "cpu",
        "MODEL.BACKBONE.PRETRAIN",
        "False",
        "DATASETS.ROOT",
        tiny_cfg.DATASETS.ROOT,
        "DATASETS.LABELS_DIR",
        str(labels_dir),
        "SOLVER.MAX_ITER",
        "1",
        "INPUT.SIZE_TRAIN",
        "[64, 32]",
        "INPUT.SIZE_TEST",
        "[64, 32]",
        "INPUT.CROP_FROM",
        "[]",
        "DATASETS.TEST",
        "()",
        "DATALOADER.NUM_WORKERS",
        "0",
        "SOLVER.IMS_PER_BATCH",
        "8",
        "OUTPUT_DIR",
        str(labels_dir) + "_out",
        *extra,
    ]


def test_daaf_training_without_labels_or_labeler_names_the_command(tiny_cfg, tmp_path):
    from daaf.config import get_cfg

    args = daaf_train_args(
        tiny_cfg,
        tmp_path / "labels",
        "PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS",
        str(tmp_path / "none.pkl"),
        "PSEUDO_LABEL.DETECTRON2.MASK_WEIGHTS",
        str(tmp_path / "none.pkl"),
    )
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: label file ") and "SyntheticPersons_train.json not found" in error
    assert "no labeler is available" in error
    # the command that makes the labels repeats the user's overrides, so they land where training reads them
    assert error.endswith(shlex.join(["python", "tools/train_net.py", "--config-file", args[3], "--pseudo-label", *args[4:]]))
    assert f"DATASETS.LABELS_DIR {tmp_path / 'labels'}" in error
    assert "Traceback" not in result.stderr

    # PSEUDO_LABEL.AUTO False: the same check in this process (the command line path is shown above)
    cfg = get_cfg()
    cfg.merge_from_file(args[3])
    cfg.merge_from_list(args[4:] + ["PSEUDO_LABEL.AUTO", "False"])
    with pytest.raises(UserError) as info:
        ensure_train_labels(cfg, config_file=args[3], opts=args[4:])
    assert str(info.value).startswith("label file ") and "make it with: python tools/train_net.py" in str(info.value)


def test_daaf_training_generates_missing_train_labels_first(tiny_cfg, tmp_path):
    cfg = labelling_cfg(tiny_cfg, tmp_path / "labels", **{"MODEL.DAAF.BRANCHES": "['HAB', 'PAB']"})
    ensure_train_labels(cfg)
    assert os.listdir(tmp_path / "labels") == ["SyntheticPersons_train.json"]  # train split only
    from daaf.data import build_reid_train_loader
    from daaf.modeling import model_input_fields

    batch = next(iter(build_reid_train_loader(cfg, input_fields=model_input_fields(cfg))))
    assert batch.person_labels.masks.shape == (8, 64, 32) and batch.person_labels.has_label.any()


# ---- judging a label file ----


def test_quality_check_against_ground_truth(synthetic_root, tmp_path, capsys):
    truth_path = os.path.join(synthetic_root, "daaf_labels", "SyntheticPersons_query.json")
    same = compare_label_files(truth_path, truth_path)
    assert same["mask_iou"] == 1.0 and all(v == 1.0 for v in same["pck"].values())

    with open(truth_path) as f:
        truth = json.load(f)
    images = truth["images"]
    first, second = images[0]["id"], images[1]["id"]
    annotations = {}
    for ann in truth["annotations"]:
        mask = decode_mask(ann["segmentation"])
        keypoints = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
        if ann["image_id"] == first:
            continue  # nobody found: IoU 0, every keypoint wrong
        if ann["image_id"] == second:
            mask = np.zeros_like(mask)
            mask[: mask.shape[0] // 2] = 1
            keypoints[:, 1] += 0.15 * ann["bbox"][3]  # between alpha 0.1 and 0.2 of the person height
        annotations[ann["image_id"]] = make_annotation(mask, keypoints)
    worse = str(tmp_path / "worse.json")
    write_label_file(worse, images, annotations, labeler="test", dataset="q")
    result = compare_label_files(worse, truth_path, alphas=(0.1, 0.2))

    by_id = {a["image_id"]: a for a in truth["annotations"]}
    gt_second = decode_mask(by_id[second]["segmentation"]).astype(bool)
    half = np.zeros_like(gt_second)
    half[: half.shape[0] // 2] = True
    iou_second = (gt_second & half).sum() / (gt_second | half).sum()
    n = len(by_id)
    assert result["images"] == n and result["found"] == n - 1
    assert result["mask_iou"] == pytest.approx((n - 2 + iou_second) / n)
    known = {i: int((np.asarray(a["keypoints"][2::3]) > 0).sum()) for i, a in by_id.items()}
    total = sum(known.values())
    assert result["pck"][0.2] == pytest.approx((total - known[first]) / total)
    assert result["pck"][0.1] == pytest.approx((total - known[first] - known[second]) / total)

    cli = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "check_labels.py"), worse, truth_path, "--json", str(tmp_path / "q.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0 and "mask IoU" in cli.stdout and "PCK" in cli.stdout
    assert "crops without a person found count as IoU 0 and every keypoint wrong" in cli.stdout  # one crop was missed
    assert json.loads((tmp_path / "q.json").read_text())["found"] == n - 1
    check_labels = load_tool("check_labels")
    capsys.readouterr()
    assert check_labels.main([str(tmp_path / "nope.json"), truth_path]) == 2
    assert capsys.readouterr().err.strip() == f"error: label file not found: {tmp_path / 'nope.json'}"


def test_labelling_speed_reads_as_images_per_second_or_seconds_per_image():
    from daaf.pseudo_label.summary import format_speed, format_summary

    assert format_speed(12.34) == "12.3 img/s" and format_speed(1 / 9.0) == "9.00 s/img" and format_speed(float("nan")) == "-"
    table = format_summary({"Market1501_train": {"images": 10, "labelled": 9, "images_per_s": 0.111}})
    header, _, row = table.splitlines()
    assert header.split(" | ")[-1].strip() == "speed" and row.split(" | ")[-1].strip() == "9.01 s/img"


@pytest.mark.parametrize(
    "content,expected",
    [
        ("[1, 2]", "expected a COCO label file (a JSON object with 'images' and 'annotations'), got a JSON list"),
        ("{oops", "not a valid JSON label file"),
        ('{"images": []}', "expected a COCO label file with an 'annotations' list"),
    ],
)
def test_a_malformed_label_file_is_one_line_naming_it(content, expected, tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(DatasetError) as info:
        load_label_file(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message
