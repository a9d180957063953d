import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import cv2
import numpy as np
import pytest
import torch

from daaf.data import (
    InferenceSampler,
    PersonLabels,
    PKSampler,
    ReIDBatch,
    ReIDDatasetMapper,
    attach_labels,
    collate_reid_batch,
    get_dataset,
)
from daaf.data.build import build_reid_train_loader, get_train_records
from daaf.data.person_labels import COCO_KEYPOINT_NAMES, NUM_KEYPOINTS, decode_mask, label_file_path, load_label_file
from daaf.data.synthetic import generate_synthetic_dataset
from daaf.data.transforms import PadAndRandomCrop, RandomCrop, RandomErasing, RandomFlip, Resize
from daaf.utils.errors import ConfigError, DatasetError

from conftest import is_running, tiny_synthetic_config


def make_images(folder, names, size=(16, 8)):
    os.makedirs(folder, exist_ok=True)
    for name in names:
        cv2.imwrite(os.path.join(folder, name), np.full((*size, 3), 127, np.uint8))


def test_market1501_layout_pids_camids_junk_and_distractors(tmp_path):
    base = tmp_path / "Market-1501-v15.09.15"
    make_images(base / "bounding_box_train", ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c6s3_085667_02.jpg"])
    make_images(base / "query", ["0003_c1s1_000551_00.jpg", "0004_c3s1_000551_00.jpg"])
    make_images(
        base / "bounding_box_test",
        ["-1_c1s1_000401_03.jpg", "0000_c2s1_000301_02.jpg", "0003_c4s2_000551_01.jpg", "0004_c5s1_000551_01.jpg"],
    )
    (base / "bounding_box_test" / "Thumbs.db").write_bytes(b"not an image")  # ignored
    dataset = get_dataset("Market1501", str(tmp_path))
    assert [(r["pid"], r["camid"]) for r in dataset.train] == [(2, 0), (2, 1), (7, 5)]
    assert [(r["pid"], r["camid"]) for r in dataset.query] == [(3, 0), (4, 2)]
    gallery_pids = sorted(r["pid"] for r in dataset.gallery)
    assert gallery_pids == [0, 3, 4]  # junk (-1) dropped, distractor (0) kept
    assert dataset.train[0]["relpath"] == "bounding_box_train/0002_c1s1_000451_03.jpg"
    summary = dataset.summary()
    assert "train" in summary and "|      2 |        3 |" in summary


def test_duke_layout(tmp_path):
    base = tmp_path / "DukeMTMC-reID"
    make_images(base / "bounding_box_train", ["0001_c2_f0046182.jpg", "0001_c5_f0051341.jpg"])
    make_images(base / "query", ["0005_c2_f0046985.jpg"])
    make_images(base / "bounding_box_test", ["0005_c8_f0051341.jpg", "0006_c1_f0046182.jpg"])
    dataset = get_dataset("DukeMTMCreID", str(tmp_path))
    assert [(r["pid"], r["camid"]) for r in dataset.train] == [(1, 1), (1, 4)]
    assert [(r["pid"], r["camid"]) for r in dataset.gallery] == [(5, 7), (6, 0)]


def test_dataset_errors_name_paths_and_patterns(tmp_path):
    with pytest.raises(DatasetError) as info:
        get_dataset("Market1501", str(tmp_path))
    assert str(tmp_path / "Market-1501-v15.09.15") in str(info.value) and "bounding_box_train" in str(info.value)
    base = tmp_path / "Market-1501-v15.09.15"
    make_images(base / "bounding_box_train", ["0002_c1s1_000451_03.jpg"])
    with pytest.raises(DatasetError, match="split folder not found: .*query"):
        get_dataset("Market1501", str(tmp_path))
    make_images(base / "query", ["holiday.jpg"])
    make_images(base / "bounding_box_test", ["0002_c2s1_000451_03.jpg"])
    with pytest.raises(DatasetError, match=r"holiday\.jpg does not match the pattern"):
        get_dataset("Market1501", str(tmp_path))


def test_datasets_root_from_environment(tmp_path, monkeypatch):
    base = tmp_path / "DukeMTMC-reID"
    make_images(base / "bounding_box_train", ["0001_c2_f0046182.jpg"])
    make_images(base / "query", ["0005_c2_f0046985.jpg"])
    make_images(base / "bounding_box_test", ["0005_c8_f0051341.jpg"])
    monkeypatch.setenv("DAAF_DATASETS", str(tmp_path))
    assert get_dataset("DukeMTMCreID").dataset_dir == str(base)


def test_synthetic_generator_is_deterministic_and_labels_match_images(tmp_path, synthetic_root):
    config = tiny_synthetic_config()
    generate_synthetic_dataset(str(tmp_path), config, progress=False)
    ours = os.path.join(str(tmp_path), "SyntheticPersons")
    theirs = os.path.join(synthetic_root, "SyntheticPersons")
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        assert sorted(os.listdir(os.path.join(ours, split))) == sorted(os.listdir(os.path.join(theirs, split)))
    some = sorted(os.listdir(os.path.join(ours, "query")))[0]
    assert open(os.path.join(ours, "query", some), "rb").read() == open(os.path.join(theirs, "query", some), "rb").read()

    dataset = get_dataset("SyntheticPersons", synthetic_root)
    assert len({r["pid"] for r in dataset.train}) == config.num_train_ids
    for split, records in (("train", dataset.train), ("query", dataset.query), ("gallery", dataset.gallery)):
        labels_path = label_file_path(os.path.join(synthetic_root, "daaf_labels"), "SyntheticPersons", split)
        labels = load_label_file(labels_path)
        with open(labels_path) as f:
            info = json.load(f)["info"]
        assert info["labeler"] == "synthetic-gt" and info["dataset"] == f"SyntheticPersons_{split}"
        for record in records:
            ann = labels[record["relpath"]]
            image = cv2.imread(record["file_name"])
            mask = decode_mask(ann["segmentation"])
            assert mask.shape == image.shape[:2] and mask.sum() > 50
            keypoints = np.array(ann["keypoints"]).reshape(NUM_KEYPOINTS, 3)
            visible = keypoints[keypoints[:, 2] == 2]
            assert len(visible) >= 3
            assert all(mask[int(y), int(x)] for x, y, _ in visible)
            # the person differs from its surroundings: masked pixels are not the background's colour
            ring = cv2.dilate(mask, np.ones((5, 5), np.uint8)) - mask
            if ring.sum() > 20:
                assert np.abs(image[mask > 0].mean(0) - image[ring > 0].mean(0)).max() > 3
    every_query_has_match = all(any(g["pid"] == q["pid"] and g["camid"] != q["camid"] for g in dataset.gallery) for q in dataset.query)
    assert every_query_has_match
    partial = os.path.join(theirs, "partial")
    assert sorted(os.listdir(os.path.join(partial, "partial_body_images"))) == sorted(
        os.listdir(os.path.join(partial, "whole_body_images"))
    )


def labelled_record(synthetic_root):
    dataset = get_dataset("SyntheticPersons", synthetic_root, log=False)
    records = [dict(r) for r in dataset.train[:12]]
    attach_labels(records, label_file_path(os.path.join(synthetic_root, "daaf_labels"), "SyntheticPersons", "train"))
    return records


@pytest.mark.parametrize("seed", range(6))
def test_mask_and_keypoints_follow_flip_pad_and_crop(synthetic_root, seed):
    """At the stored resolution every visible keypoint stays exactly on the mask."""
    records = labelled_record(synthetic_root)
    augs = [RandomCrop((112, 56)), RandomFlip(0.5), PadAndRandomCrop(10)]
    mapper = ReIDDatasetMapper(is_train=True, augmentations=augs, input_fields=PersonLabels.FIELDS)
    np.random.seed(seed)
    for record in records:
        out = mapper(record)
        mask = out["person_labels"].masks[0].numpy()
        keypoints = out["person_labels"].keypoints[0].numpy()
        assert out["image"].shape == (3, 112, 56) and out["image"].dtype == torch.uint8 and mask.shape == (112, 56)
        for x, y, v in keypoints:
            if v == 2:
                assert 0 <= x < 56 and 0 <= y < 112 and mask[int(y), int(x)] == 1


@pytest.mark.parametrize("seed", range(3))
def test_mask_and_keypoints_follow_resize_within_a_pixel(synthetic_root, seed):
    """After down-scaling (nearest-neighbour masks) visible keypoints are within 1 px of the mask."""
    records = labelled_record(synthetic_root)
    augs = [Resize((72, 36)), RandomCrop((64, 32)), RandomFlip(0.5), PadAndRandomCrop(4)]
    mapper = ReIDDatasetMapper(is_train=True, augmentations=augs, input_fields=PersonLabels.FIELDS)
    np.random.seed(seed)
    for record in records:
        out = mapper(record)
        mask = cv2.dilate(out["person_labels"].masks[0].numpy(), np.ones((3, 3), np.uint8))
        for x, y, v in out["person_labels"].keypoints[0].numpy():
            if v == 2:
                assert 0 <= x < 32 and 0 <= y < 64 and mask[int(y), int(x)] == 1


def test_horizontal_flip_swaps_left_and_right_keypoints(synthetic_root):
    record = labelled_record(synthetic_root)[0]
    plain = ReIDDatasetMapper(is_train=True, augmentations=[Resize((64, 32))], input_fields=PersonLabels.FIELDS)(record)
    flipped = ReIDDatasetMapper(is_train=True, augmentations=[Resize((64, 32)), RandomFlip(1.0)], input_fields=PersonLabels.FIELDS)(record)
    kp, kf = plain["person_labels"].keypoints[0], flipped["person_labels"].keypoints[0]
    left_shoulder, right_shoulder = COCO_KEYPOINT_NAMES.index("left_shoulder"), COCO_KEYPOINT_NAMES.index("right_shoulder")
    assert kf[left_shoulder, 0] == pytest.approx(32 - kp[right_shoulder, 0])
    assert kf[left_shoulder, 1] == pytest.approx(kp[right_shoulder, 1])
    assert kf[0, 0] == pytest.approx(32 - kp[0, 0])  # the nose stays the nose
    assert torch.equal(flipped["image"], plain["image"].flip(-1))
    assert torch.equal(flipped["person_labels"].masks[0], plain["person_labels"].masks[0].flip(-1))


def test_keypoints_cropped_out_become_invisible(synthetic_root):
    record = labelled_record(synthetic_root)[0]

    class CropTop(RandomCrop):
        def get_transform(self, height, width):
            from fvcore.transforms.transform import CropTransform

            return CropTransform(0, 0, width, height // 2, orig_w=width, orig_h=height)

        def output_size(self, height, width):
            return height // 2, width

    out = ReIDDatasetMapper(is_train=True, augmentations=[Resize((64, 32)), CropTop((32, 32))], input_fields=PersonLabels.FIELDS)(record)
    keypoints = out["person_labels"].keypoints[0]
    ankle = COCO_KEYPOINT_NAMES.index("left_ankle")
    assert keypoints[ankle, 2] == 0 and keypoints[0, 2] > 0


def test_random_erasing_changes_the_image_only(synthetic_root):
    record = labelled_record(synthetic_root)[0]
    base = dict(is_train=True, augmentations=[Resize((64, 32))], input_fields=PersonLabels.FIELDS)
    np.random.seed(0)
    erased = ReIDDatasetMapper(**base, random_erasing=RandomErasing(prob=1.0))(record)
    plain = ReIDDatasetMapper(**base)(record)
    assert not torch.equal(erased["image"], plain["image"])
    assert torch.equal(erased["person_labels"].masks[0], plain["person_labels"].masks[0])
    assert torch.equal(erased["person_labels"].keypoints[0], plain["person_labels"].keypoints[0])


def test_crop_without_person_gives_empty_instance_and_collate_marks_it(synthetic_root):
    records = labelled_record(synthetic_root)[:2]
    records[1]["person_label"] = None  # the labeler found nobody
    mapper = ReIDDatasetMapper(is_train=True, augmentations=[Resize((64, 32))], input_fields=PersonLabels.FIELDS)
    batch = collate_reid_batch([mapper(r) for r in records])
    assert (
        batch.images.shape == (2, 3, 64, 32)
        and batch.person_labels.masks.shape == (2, 64, 32)
        and batch.person_labels.keypoints.shape == (2, 17, 3)
    )
    assert batch.person_labels.has_label.tolist() == [True, False]
    assert (
        batch.person_labels.masks[0].sum() > 0
        and batch.person_labels.masks[1].sum() == 0
        and batch.person_labels.keypoints[1].abs().sum() == 0
    )


def test_label_file_missing_entries_are_counted_and_listed(synthetic_root, tmp_path):
    path = label_file_path(os.path.join(synthetic_root, "daaf_labels"), "SyntheticPersons", "train")
    with open(path) as f:
        content = json.load(f)
    dropped = {im["id"] for im in content["images"][:5]}
    content["images"] = content["images"][5:]
    content["annotations"] = [a for a in content["annotations"] if a["image_id"] not in dropped]
    broken = tmp_path / "train.json"
    broken.write_text(json.dumps(content))
    records = [dict(r) for r in get_dataset("SyntheticPersons", synthetic_root, log=False).train]
    with pytest.raises(DatasetError) as info:
        attach_labels(records, str(broken))
    assert "lacks entries for 5 of" in str(info.value) and "bounding_box_train/" in str(info.value)


def test_corrupt_or_empty_image_error_names_the_file(tmp_path):
    bad = tmp_path / "0001_c1s1_000001_00.jpg"
    bad.write_bytes(b"")
    mapper = ReIDDatasetMapper(is_train=False, augmentations=[Resize((64, 32))])
    with pytest.raises(DatasetError, match="0001_c1s1_000001_00.jpg"):
        mapper({"file_name": str(bad), "pid": 1, "camid": 0})
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match="corrupt"):
        mapper({"file_name": str(bad), "pid": 1, "camid": 0})


def test_pk_sampler_batches_ids_and_rank_shards():
    pids = [0] * 9 + [1] * 2 + [2] * 5 + [3] * 4 + [4] * 7 + [5] * 1 + [6] * 6 + [7] * 3
    k, batch = 4, 16
    single = list(itertools.islice(iter(PKSampler(pids, batch, k, seed=3, rank=0, world_size=1)), batch * 20))
    for b in range(20):
        chunk = single[b * batch : (b + 1) * batch]
        counts = Counter(pids[i] for i in chunk)
        assert len(counts) == batch // k and set(counts.values()) == {k}
    assert single == list(itertools.islice(iter(PKSampler(pids, batch, k, seed=3, rank=0, world_size=1)), batch * 20))
    ranks = [list(itertools.islice(iter(PKSampler(pids, batch, k, seed=3, rank=r, world_size=2)), batch // 2 * 20)) for r in (0, 1)]
    for b in range(20):
        part0 = ranks[0][b * 8 : (b + 1) * 8]
        part1 = ranks[1][b * 8 : (b + 1) * 8]
        assert part0 + part1 == single[b * batch : (b + 1) * batch]  # the two halves of one global batch
        assert not {pids[i] for i in part0} & {pids[i] for i in part1}
    with pytest.raises(ConfigError, match="divisible"):
        PKSampler(pids, 10, 4, seed=0, rank=0, world_size=1)
    # one identity per process: the triplet loss would be silently 0 (e.g. 2 processes, batch 8, K 4)
    with pytest.raises(ConfigError, match=r"gives 1 identity per process; the triplet loss needs at least 2 \(IMS_PER_BATCH >= 16\)"):
        PKSampler(pids, 8, 4, seed=0, rank=0, world_size=2)


def test_inference_sampler_covers_every_index_once():
    shards = [list(InferenceSampler(11, rank=r, world_size=3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11)) and [len(s) for s in shards] == [4, 4, 3]


def test_train_loader_from_config_yields_pk_batches(tiny_cfg):
    loader = build_reid_train_loader(tiny_cfg)
    batch = next(iter(loader))
    assert batch.images.shape == (8, 3, 64, 32) and batch.images.dtype == torch.uint8
    assert sorted(Counter(batch.pids.tolist()).values()) == [4, 4]
    assert loader.dataset.num_classes == 8
    assert batch.person_labels is None  # a baseline reads no labels


def test_train_records_relabel_pids_across_datasets(synthetic_root):
    records = get_train_records(["SyntheticPersons", "SyntheticPersons"], synthetic_root)
    pids = sorted({r["pid"] for r in records})
    assert pids == list(range(16))
    assert {r["camid"] for r in records[len(records) // 2 :]} == {3, 4, 5}


def test_translate_equals_pad_then_crop():
    from fvcore.transforms.transform import CropTransform, PadTransform

    from daaf.data.transforms import TranslateTransform

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (12, 7, 3), dtype=np.uint8)
    coords = rng.random((5, 2)) * [7, 12]
    p = 3
    for x0 in range(2 * p + 1):
        for y0 in range(2 * p + 1):
            padded = PadTransform(p, p, p, p, orig_w=7, orig_h=12).apply_image(image)
            expected = CropTransform(x0, y0, 7, 12).apply_image(padded)
            t = TranslateTransform(p - x0, p - y0, 12, 7)
            assert np.array_equal(t.apply_image(image), expected)
            assert np.array_equal(t.apply_image(image[..., 0]), expected[..., 0])
            np.testing.assert_allclose(t.apply_coords(coords.copy()), coords + [p - x0, p - y0])


def test_loader_workers_deliver_the_same_batches_as_in_process_collate(synthetic_root):
    """Worker processes send small tensors as bytes and masks as bits; what comes out is identical."""
    from torch.utils.data import DataLoader

    from daaf.data import MappedDataset, ReIDDataLoader

    records = labelled_record(synthetic_root)[:10]
    records[3]["person_label"] = None  # a crop without a person: zero mask, has_label False
    dataset = MappedDataset(records, ReIDDatasetMapper(is_train=True, augmentations=[Resize((64, 32))], input_fields=PersonLabels.FIELDS))
    expected = list(DataLoader(dataset, batch_size=4, collate_fn=collate_reid_batch))
    received = list(ReIDDataLoader(dataset, batch_size=4, num_workers=2))
    assert len(received) == len(expected) == 3

    def assert_same(got, want):
        for field in dataclasses.fields(want):
            value, mine = getattr(want, field.name), getattr(got, field.name)
            if isinstance(value, torch.Tensor):
                assert isinstance(mine, torch.Tensor) and mine.dtype == value.dtype, field.name
                assert torch.equal(mine, value), field.name
            elif isinstance(value, PersonLabels):
                assert isinstance(mine, PersonLabels)
                assert_same(mine, value)
            else:
                assert mine == value, field.name

    for got, want in zip(received, expected):
        assert isinstance(got, ReIDBatch)
        assert_same(got, want)
    assert received[0].person_labels.has_label.tolist() == [True, True, True, False]
    assert received[0].person_labels.masks.sum() > 0
    # what really crosses the process boundary: at this size no tensor at all (all under 64 KB),
    # and the masks as bits
    wire = next(iter(DataLoader(dataset, batch_size=4, num_workers=1, collate_fn=ReIDDataLoader(dataset).collate_fn)))
    assert not any(isinstance(getattr(wire, f.name), torch.Tensor) for f in dataclasses.fields(wire))
    assert wire.person_labels.masks.bits.nbytes == 4 * 64 * 32 // 8


def test_loader_workers_pass_masks_that_are_not_binary_unchanged(synthetic_root):
    """Packing to bits is only for 0/1 masks; anything else travels as it is."""
    from daaf.data import MappedDataset, ReIDDataLoader

    def collate_with_0_255_masks(items):
        batch = collate_reid_batch(items)
        return dataclasses.replace(batch, person_labels=dataclasses.replace(batch.person_labels, masks=batch.person_labels.masks * 255))

    records = labelled_record(synthetic_root)[:4]
    dataset = MappedDataset(records, ReIDDatasetMapper(is_train=True, augmentations=[Resize((64, 32))], input_fields=PersonLabels.FIELDS))
    (batch,) = list(ReIDDataLoader(dataset, batch_size=4, num_workers=1, collate_fn=collate_with_0_255_masks))
    assert set(batch.person_labels.masks.unique().tolist()) == {0, 255}
    (plain,) = list(ReIDDataLoader(dataset, batch_size=4, num_workers=1, collate_fn=list))
    assert isinstance(plain, list) and len(plain) == 4  # a collate that returns no ReIDBatch is left alone


def test_the_mapper_makes_only_the_label_fields_asked_for(synthetic_root):
    record = labelled_record(synthetic_root)[0]
    augs = [Resize((64, 32)), RandomFlip(1.0)]
    both = ReIDDatasetMapper(is_train=True, augmentations=augs, input_fields=PersonLabels.FIELDS)(record)
    keypoints_only = ReIDDatasetMapper(is_train=True, augmentations=augs, input_fields={"keypoints"})(record)
    masks_only = ReIDDatasetMapper(is_train=True, augmentations=augs, input_fields={"masks"})(record)
    image_only = ReIDDatasetMapper(is_train=True, augmentations=augs)({k: v for k, v in record.items() if k != "person_label"})
    for out, fields in ((keypoints_only, {"keypoints"}), (masks_only, {"masks"}), (both, {"masks", "keypoints"})):
        assert set(out) == {"image", "pid", "camid", "file_name", "person_labels"}
        assert {f for f in PersonLabels.FIELDS if out["person_labels"].has(f)} == fields and out["person_labels"].has_label.tolist() == [
            True
        ]
    assert set(image_only) == {"image", "pid", "camid", "file_name"}
    assert torch.equal(keypoints_only["person_labels"].keypoints[0], both["person_labels"].keypoints[0]) and torch.equal(
        masks_only["person_labels"].masks[0], both["person_labels"].masks[0]
    )
    assert torch.equal(image_only["image"], both["image"])
    with pytest.raises(DatasetError, match="no person label"):
        ReIDDatasetMapper(is_train=True, augmentations=augs, input_fields={"masks"})(image_only | {"file_name": record["file_name"]})


def test_a_model_that_trains_on_no_labels_reads_no_label_file(tiny_cfg, tmp_path):
    """PAB with part-image targets learns from the image itself: its loader needs no label file."""
    from daaf.modeling import model_input_fields

    cfg = tiny_cfg.clone()
    cfg.MODEL.DAAF.BRANCHES = ["PAB"]
    cfg.MODEL.DAAF.PAB.TARGET = "part_image"
    cfg.DATASETS.LABELS_DIR = str(tmp_path / "no_labels_here")
    batch = next(iter(build_reid_train_loader(cfg, input_fields=model_input_fields(cfg))))
    assert batch.person_labels is None
    cfg.MODEL.DAAF.PAB.TARGET = "keypoints"
    with pytest.raises(DatasetError, match="label file not found: .*no_labels_here"):
        build_reid_train_loader(cfg, input_fields=model_input_fields(cfg))
    with pytest.raises(ConfigError, match=r"batch fields \['depth'\], which the ReID loader does not make"):
        build_reid_train_loader(cfg, input_fields={"depth"})


_STUCK_PARENT = """
import glob, os, time
import torch
from daaf.data import MappedDataset, ReIDDataLoader

class Mapper:
    def __call__(self, record):  # ~60 KB a crop: pickled into the worker's pipe
        return {"image": torch.zeros(3, 100, 200, dtype=torch.uint8), "pid": 0, "camid": 0, "file_name": record["file_name"]}

records = [{"file_name": f"{i}.jpg", "pid": 0, "camid": 0} for i in range(10000)]
iterator = iter(ReIDDataLoader(MappedDataset(records, Mapper()), batch_size=1, num_workers=2, prefetch_factor=8))
next(iterator)
print(" ".join(open(t).read().strip() for t in glob.glob(f"/proc/{os.getpid()}/task/*/children")), flush=True)
time.sleep(600)  # reads no more: the workers' pipes fill up and their writes block
"""


def test_loader_workers_end_when_their_parent_is_killed():
    """A worker blocked writing to a full pipe outlives a killed parent unless it is told to die
    with it (it held the caller's stdout open, so ``$(...)`` and CI hung)."""
    parent = subprocess.Popen([sys.executable, "-c", _STUCK_PARENT], stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2
    time.sleep(1.5)  # the pipes fill
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while any(map(is_running, workers)) and time.time() < deadline:
        time.sleep(0.1)
    alive = [w for w in workers if is_running(w)]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    assert not alive, "loader workers outlived their killed parent"


def test_a_resumed_stream_is_the_uninterrupted_stream_from_that_batch_on(tiny_cfg):
    from daaf.data.samplers import SeededBatchSampler

    pids = [i // 5 for i in range(60)]
    full = SeededBatchSampler(PKSampler(pids, 8, 4, seed=None, rank=0, world_size=1))  # a random seed
    expected = list(itertools.islice(iter(full), 40))
    resumed = SeededBatchSampler(PKSampler(pids, 8, 4, seed=12345, rank=0, world_size=1))
    resumed.resume(full.state_dict(), start_batch=23)  # the checkpoint's seed wins over the config's
    assert list(itertools.islice(iter(resumed), 17)) == expected[23:]
    assert len({seed for batch in expected for _, seed in batch}) == 40 * 8  # every draw its own seed
    # with the sampler's per-item seeds an item is augmented the same whichever worker maps it
    cfg = tiny_cfg.clone()
    cfg.INPUT.FLIP.ENABLED = cfg.INPUT.PADDING.ENABLED = cfg.INPUT.REA.ENABLED = True
    batches = {}
    for workers in (0, 2):
        cfg.DATALOADER.NUM_WORKERS = workers
        batches[workers] = list(itertools.islice(iter(build_reid_train_loader(cfg)), 3))
    for a, b in zip(batches[0], batches[2]):
        assert a.file_names == b.file_names and torch.equal(a.images, b.images)


def test_analyses_read_the_one_test_size_crop_the_network_sees_also_for_a_five_crop_test(synthetic_root):
    from daaf.analysis.branch_outputs import labelled_query_batch
    from daaf.config import get_cfg
    from daaf.data.image_list import build_image_list_loader, read_test_images

    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.ROOT", synthetic_root, "DATASETS.TEST", "('SyntheticPersons',)", "DATALOADER.NUM_WORKERS", "0"])
    cfg.merge_from_list(["INPUT.SIZE_TEST", "[64, 32]", "INPUT.CROP_FROM", "[72, 36]", "TEST.FIVE_CROP", "True"])
    paths = [r["file_name"] for r in get_dataset("SyntheticPersons", synthetic_root, log=False).query[:3]]
    assert read_test_images(cfg, paths).shape == (3, 3, 64, 32)  # not the 72x36 the five crops are cut from
    assert next(iter(build_image_list_loader(cfg, paths))).images.shape[-2:] == (72, 36)  # features: the five-crop source
    batch = labelled_query_batch(cfg, 2)
    assert batch.images.shape == (2, 3, 64, 32) and batch.person_labels.masks.shape[-2:] == (64, 32)
    visible = batch.person_labels.keypoints[..., 2] > 0
    xy = batch.person_labels.keypoints[..., :2][visible]
    assert (xy[:, 0] < 32).all() and (xy[:, 1] < 64).all()  # the keypoints in the crop's own pixels
