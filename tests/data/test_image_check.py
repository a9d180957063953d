import logging
import os
import shutil

import cv2
import numpy as np
import pytest

from daaf.data import build_reid_train_loader, get_dataset, image_check
from daaf.data.image_check import find_bad_images, image_problem
from daaf.utils.errors import DatasetError

from conftest import png_declaring


@pytest.mark.parametrize("ext", ["jpg", "png", "bmp"])
def test_whole_images_pass_and_cut_empty_or_foreign_files_are_named(tmp_path, ext):
    rng = np.random.default_rng(0)
    whole = str(tmp_path / f"whole.{ext}")
    cv2.imwrite(whole, rng.integers(0, 255, (64, 32, 3), dtype=np.uint8))
    data = open(whole, "rb").read()
    (tmp_path / f"cut.{ext}").write_bytes(data[: len(data) // 2])
    (tmp_path / f"empty.{ext}").write_bytes(b"")
    (tmp_path / f"text.{ext}").write_bytes(b"<html>not found</html>")
    assert image_problem(whole) is None
    assert "truncated" in image_problem(str(tmp_path / f"cut.{ext}"))
    assert image_problem(str(tmp_path / f"empty.{ext}")) == "empty file"
    assert image_problem(str(tmp_path / f"text.{ext}")) == "not a JPEG, PNG, BMP or TIFF image"


@pytest.fixture
def damaged_root(synthetic_root, tmp_path):
    """The tiny synthetic dataset with one empty and one truncated training image."""
    root = tmp_path / "datasets"
    shutil.copytree(synthetic_root, root)
    train = sorted((root / "SyntheticPersons" / "bounding_box_train").iterdir())
    train[0].write_bytes(b"")
    train[5].write_bytes(train[5].read_bytes()[:300])
    return str(root), [str(train[0]), str(train[5])]


def test_bad_training_images_are_listed_in_one_line_before_training(tiny_cfg, damaged_root):
    root, bad = damaged_root
    cfg = tiny_cfg.clone()
    cfg.DATASETS.ROOT = root
    with pytest.raises(DatasetError) as info:
        build_reid_train_loader(cfg)
    message = str(info.value)
    assert "\n" not in message and message.startswith("2 of 43 training images cannot be read: ")
    assert f"{bad[0]} (empty file)" in message and f"{bad[1]} (truncated JPEG" in message
    assert message.endswith("or set DATALOADER.SKIP_BAD_IMAGES True to train without them")


def test_skip_bad_images_trains_without_them_and_the_check_is_cached(tiny_cfg, damaged_root, caplog, monkeypatch):
    root, bad = damaged_root
    cfg = tiny_cfg.clone()
    cfg.DATASETS.ROOT = root
    cfg.DATALOADER.SKIP_BAD_IMAGES = True
    with caplog.at_level(logging.WARNING):
        loader = build_reid_train_loader(cfg)
    assert "Skipping 2 of 43 training images that cannot be read" in caplog.text
    files = {r["file_name"] for r in loader.dataset.records}
    assert len(files) == 41 and not files & set(bad)
    next(iter(loader))  # trains
    # the same file list is not read again; a changed file is
    monkeypatch.setattr(image_check, "image_problem", lambda path, *limit: pytest.fail("read again"))
    records = get_dataset("SyntheticPersons", root, log=False).train
    assert set(find_bad_images([r["file_name"] for r in records])) == set(bad)
    os.utime(bad[0], ns=(1, 1))
    with pytest.raises(pytest.fail.Exception, match="read again"):
        find_bad_images([r["file_name"] for r in records])


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp"])
def test_the_header_size_is_read_for_each_format(tmp_path, ext):
    from daaf.data.image_check import image_header_size

    path = tmp_path / f"crop{ext}"
    cv2.imwrite(str(path), np.zeros((37, 19, 3), np.uint8))
    assert image_header_size(path.read_bytes()[:4096]) == (37, 19)


def test_an_image_declaring_too_many_pixels_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    from daaf.data.mapper import read_image

    bomb = png_declaring(tmp_path / "bomb.png", 60_000, 60_000)
    message = "declares 60000 x 60000 pixels, more than INPUT.MAX_IMAGE_PIXELS (100,000,000)"
    assert image_problem(bomb) == message
    decoded = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(a))
    with pytest.raises(DatasetError, match=f"^{bomb}: {message.replace('(', '[(]').replace(')', '[)]')}$"):
        read_image(bomb)
    assert decoded == []  # refused from the header
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((20, 10, 3), np.uint8))
    assert image_problem(str(small), max_pixels=199) == "declares 10 x 20 pixels, more than INPUT.MAX_IMAGE_PIXELS (199)"
    assert image_problem(str(small), max_pixels=200) is None
