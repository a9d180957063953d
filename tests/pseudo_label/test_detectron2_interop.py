"""What a detectron2 user expects beside the labeler and the backbone: detectron2 code that calls
its own get_event_storage() during a DAAF-ReID run writes into the run's EventStorage."""

import pytest
import torch

from daaf.utils.events import EventStorage, get_event_storage

from conftest import REPO


def test_storage_name_scope_explicit_iteration_and_histograms():
    with EventStorage(start_iter=3) as storage:
        assert get_event_storage() is storage and storage.iteration == 3
        with storage.name_scope("rpn"):
            storage.put_scalar("num_pos_anchors", 5)
        storage.put_scalars(loss=torch.tensor(0.25), cur_iter=7)
        storage.put_histogram("weights", torch.arange(10.0), bins=5)
    assert storage.latest() == {"rpn/num_pos_anchors": (5.0, 3), "loss": (0.25, 7)}
    (histogram,) = storage._histograms
    assert histogram["tag"] == "weights" and histogram["num"] == 10 and histogram["sum"] == 45.0
    assert sum(histogram["bucket_counts"]) == 10 and histogram["bucket_limits"][-1] == 9.0


@pytest.mark.detectron2
def test_detectron2_modules_write_into_the_runs_event_storage():
    from detectron2.utils.events import get_event_storage as detectron2_storage

    with EventStorage(start_iter=11) as storage:
        assert detectron2_storage() is storage
        detectron2_storage().put_scalar("roi_head/num_fg_samples", 12.0)  # as detectron2's ROI heads do
        with detectron2_storage().name_scope("mask_rcnn"):
            detectron2_storage().put_scalar("accuracy", 0.5)
        detectron2_storage().put_histogram("rpn/objectness", torch.randn(50))
    assert storage.latest()["roi_head/num_fg_samples"] == (12.0, 11)
    assert storage.latest()["mask_rcnn/accuracy"] == (0.5, 11)
    with pytest.raises(AssertionError):  # closed: detectron2 sees no storage any more
        detectron2_storage()


@pytest.mark.detectron2
def test_label_files_are_detectron2_datasets_that_its_visualizer_draws(tiny_cfg):
    import cv2
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.utils.visualizer import Visualizer

    from daaf.pseudo_label.detectron2_catalog import register_detectron2_datasets

    names = register_detectron2_datasets(tiny_cfg)
    assert names == [f"daaf_SyntheticPersons_{split}" for split in ("train", "query", "gallery")]
    metadata = MetadataCatalog.get("daaf_SyntheticPersons_query")
    assert metadata.thing_classes == ["person"] and ("left_eye", "right_eye") in metadata.keypoint_flip_map
    assert len(metadata.keypoint_names) == 17 and len(metadata.keypoint_connection_rules) == 19
    dicts = DatasetCatalog.get("daaf_SyntheticPersons_query")
    assert len(dicts) == 9 and all(cv2.imread(d["file_name"]) is not None for d in dicts)
    (person,) = dicts[0]["annotations"]
    assert len(person["keypoints"]) == 51 and person["category_id"] == 0 and "counts" in person["segmentation"]
    image = cv2.imread(dicts[0]["file_name"])[:, :, ::-1]
    drawn = Visualizer(image, metadata).draw_dataset_dict(dicts[0]).get_image()
    assert drawn.shape == image.shape and (drawn != image).any()


@pytest.mark.detectron2
def test_check_labels_scores_a_labeler_with_detectron2_coco_evaluator(synthetic_root, tmp_path):
    import json
    import subprocess
    import sys

    from daaf.pseudo_label.detectron2_catalog import coco_evaluate_label_file

    truth = f"{synthetic_root}/daaf_labels/SyntheticPersons_query.json"
    perfect = coco_evaluate_label_file(truth, truth)
    assert perfect["segm"]["AP"] == pytest.approx(100.0) and perfect["keypoints"]["AP"] == pytest.approx(100.0)

    with open(truth) as f:
        content = json.load(f)
    kept = content["annotations"][: len(content["annotations"]) // 3]  # the labeler found a third of the people
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps({**content, "annotations": kept}))
    result = coco_evaluate_label_file(str(worse), truth)
    assert result["segm"]["AP"] < 50 and result["keypoints"]["AP"] < 50

    cli = subprocess.run(
        [sys.executable, "tools/check_labels.py", str(worse), truth, "--coco-eval", "--json", str(tmp_path / "q.json")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "detectron2 COCOEvaluator segm" in cli.stdout and "detectron2 COCOEvaluator keypoints" in cli.stdout
    saved = json.loads((tmp_path / "q.json").read_text())["coco"]
    assert saved["segm"]["AP"] == pytest.approx(result["segm"]["AP"])
