"""The person-label file: reading validates every entry, and the first bad one is named in one line."""

import json

import numpy as np
import pytest

from daaf.data.person_labels import (
    NUM_KEYPOINTS,
    check_rle,
    decode_mask,
    encode_mask,
    load_label_file,
    make_annotation,
    parse_keypoints,
    rle_run_lengths,
    write_label_file,
)
from daaf.utils.errors import DatasetError


def good_file(tmp_path, count=3):
    """A valid label file of ``count`` 16 x 8 crops (the last one without a person)."""
    rng = np.random.default_rng(0)
    images = [{"id": i + 1, "file_name": f"bounding_box_train/{i:04d}_c1.jpg", "height": 16, "width": 8} for i in range(count)]
    annotations = {}
    for image in images[:-1]:
        keypoints = np.concatenate([rng.random((NUM_KEYPOINTS, 2)) * 8, np.full((NUM_KEYPOINTS, 1), 2.0)], 1)
        annotations[image["id"]] = make_annotation((rng.random((16, 8)) > 0.5).astype(np.uint8), keypoints)
    path = tmp_path / "Toy_train.json"
    write_label_file(str(path), images, annotations, labeler="test", dataset="Toy")
    return path


def test_a_written_file_reads_back_with_masks_and_keypoints(tmp_path):
    labels = load_label_file(str(good_file(tmp_path)))
    assert len(labels) == 3 and labels["bounding_box_train/0002_c1.jpg"] is None
    first = labels["bounding_box_train/0000_c1.jpg"]
    assert decode_mask(first["segmentation"]).shape == (16, 8)
    assert parse_keypoints(first["keypoints"]).shape == (NUM_KEYPOINTS, 3)


def corrupt(path, change):
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))
    return str(path)


def set_keypoint(content, index, value):
    content["annotations"][0]["keypoints"][index] = value


CASES = {
    "image entry is a number": (lambda c: c["images"].__setitem__(1, 7), "images[1]: expected an object"),
    "file name is a number": (lambda c: c["images"][1].__setitem__("file_name", 12), "images[1]: file_name: expected a non-empty string"),
    "height is zero": (lambda c: c["images"][0].__setitem__("height", 0), "height: expected a positive integer, got 0"),
    "duplicate image id": (lambda c: c["images"][1].__setitem__("id", 1), "id 1 is also the id of bounding_box_train/0000_c1.jpg"),
    "unknown image id": (lambda c: c["annotations"][0].__setitem__("image_id", 99), "annotation 1: image_id 99 is not the id"),
    "garbage RLE counts": (
        lambda c: c["annotations"][0]["segmentation"].__setitem__("counts", "garbage!!"),
        "image bounding_box_train/0000_c1.jpg: segmentation: counts hold characters outside",
    ),
    "RLE of too few pixels": (
        lambda c: c["annotations"][0]["segmentation"].__setitem__("counts", "0"),
        "segmentation: counts describe 0 pixels",
    ),
    "mask of another size": (
        lambda c: c["annotations"][0].__setitem__("segmentation", encode_mask(np.ones((8, 8), np.uint8))),
        "segmentation: mask size [8, 8] differs from the image's [height, width] [16, 8]",
    ),
    "NaN keypoint": (lambda c: set_keypoint(c, 4, float("nan")), "keypoints: keypoint left_eye is not finite"),
    "visibility 3": (lambda c: set_keypoint(c, 2, 3), "keypoints: keypoint nose has visibility 3 (expected 0, 1 or 2)"),
    "50 keypoint values": (lambda c: c["annotations"][0]["keypoints"].pop(), "keypoints: expected 51 numbers"),
    "keypoint is a string": (lambda c: set_keypoint(c, 0, "1.0"), "keypoints: expected numbers only"),
    "no segmentation": (lambda c: c["annotations"][0].pop("segmentation"), "the annotation has no 'segmentation'"),
    "two persons in one image": (
        lambda c: c["annotations"].append({**c["annotations"][0], "id": 9}),
        "image bounding_box_train/0000_c1.jpg: more than one person annotation",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_entry_is_one_line_naming_the_file_the_entry_and_the_field(tmp_path, case):
    change, message = CASES[case]
    path = corrupt(good_file(tmp_path), change)
    with pytest.raises(DatasetError) as info:
        load_label_file(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text, text


def test_run_lengths_read_from_the_string_rebuild_every_mask():
    """The RLE check reads the runs as pycocotools does: the runs rebuild the mask pycocotools decodes."""
    rng = np.random.default_rng(1)
    for trial in range(60):
        h, w = rng.integers(1, 120, 2)
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        if trial % 4 == 0:
            mask = np.zeros((h, w), np.uint8)
            mask[h // 3 :, : w // 2] = 1  # long runs: numbers of several characters
        rle = encode_mask(mask)
        runs = rle_run_lengths(rle["counts"])
        rebuilt = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8).reshape(w, h).T  # column-major
        np.testing.assert_array_equal(rebuilt, decode_mask(rle))
        assert check_rle(rle) == (h, w)
