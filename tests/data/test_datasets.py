import json
import os

import cv2
import h5py
import numpy as np
import pytest
from scipy.io import savemat

from daaf.config import get_cfg
from daaf.data import build_reid_test_loader, dataset_report_ranks, get_dataset
from daaf.data.datasets import extract_cuhk03_images, register_custom_dataset
from daaf.engine import DefaultTrainer
from daaf.utils.errors import ConfigError, DatasetError


def write_images(folder, names, value=100, size=(16, 8)):
    os.makedirs(folder, exist_ok=True)
    for name in names:
        cv2.imwrite(os.path.join(folder, name), np.full((*size, 3), value, np.uint8))


def make_cuhk03_mat(path, persons_per_pair=3, pairs=2, missing=((0, 1, 9),)):
    """A tiny cuhk-03.mat laid out as MATLAB v7.3 writes it (cells as HDF5 object references)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for variant in ("labeled", "detected"):
            pair_refs = []
            for p in range(pairs):
                refs = np.empty((persons_per_pair, 10), dtype=h5py.ref_dtype)
                for person in range(persons_per_pair):
                    for index in range(10):
                        name = f"#refs#/{variant}_{p}_{person}_{index}"
                        if (p, person, index) in missing:
                            ds = f.create_dataset(name, data=np.zeros(2, dtype=np.uint64))  # MATLAB's empty []
                        else:
                            image = rng.integers(0, 255, (20, 10, 3), dtype=np.uint8)
                            ds = f.create_dataset(name, data=image.T)
                        refs[person, index] = ds.ref
                pair_refs.append(f.create_dataset(f"#refs#/{variant}_pair{p}", data=refs).ref)
            f.create_dataset(variant, data=np.array([pair_refs], dtype=h5py.ref_dtype))


def test_cuhk03_new_protocol_from_mat_files(tmp_path):
    base = tmp_path / "cuhk03"
    (base / "cuhk03_release").mkdir(parents=True)
    make_cuhk03_mat(str(base / "cuhk03_release" / "cuhk-03.mat"))
    counts = extract_cuhk03_images(str(base / "cuhk03_release" / "cuhk-03.mat"), str(base), progress=False)
    assert counts == {"labeled": 59, "detected": 59}  # 2 pairs x 3 persons x 10 images, one missing
    names = sorted(os.listdir(base / "images_labeled"))
    assert names[0] == "1_001_1_01.png" and "1_002_2_10.png" not in names
    # split: persons of pair 1 train, persons of pair 2 test (query = camera 1 image 1, gallery = camera 2)
    files, labels, cams, train, query, gallery = [], [], [], [], [], []
    for p in (1, 2):
        for person in (1, 2, 3):
            for index in range(1, 11):
                name = f"{p}_{person:03d}_{1 if index <= 5 else 2}_{index:02d}.png"
                if name not in names:
                    continue
                files.append(name)
                labels.append(p * 100 + person)
                cams.append(1 if index <= 5 else 2)
                n = len(files)
                (train if p == 1 else query if index == 1 else gallery if index > 5 else []).append(n)
    column = lambda xs: np.array(xs, dtype=np.float64).reshape(-1, 1)  # noqa: E731
    for variant in ("labeled", "detected"):
        savemat(
            str(base / f"cuhk03_new_protocol_config_{variant}.mat"),
            {
                "filelist": np.array(files, dtype=object).reshape(-1, 1),
                "labels": column(labels),
                "camId": column(cams),
                "train_idx": column(train),
                "query_idx": column(query),
                "gallery_idx": column(gallery),
            },
        )
    dataset = get_dataset("CUHK03Labeled", str(tmp_path))
    assert len(dataset.train) == len(train) == 29 and len(dataset.query) == 3 and len(dataset.gallery) == 15
    assert {r["pid"] for r in dataset.train} == {101, 102, 103}
    assert dataset.query[0]["camid"] == 0 and dataset.gallery[0]["camid"] == 1
    assert dataset.query[0]["file_name"].endswith("images_labeled/2_001_1_01.png")
    assert get_dataset("CUHK03Detected", str(tmp_path)).gallery[0]["file_name"].endswith("images_detected/2_001_2_06.png")


def test_cuhk03_without_extracted_images_names_the_prepare_command(tmp_path):
    base = tmp_path / "cuhk03"
    base.mkdir()
    savemat(str(base / "cuhk03_new_protocol_config_labeled.mat"), {"filelist": np.array(["a.png"], dtype=object)})
    with pytest.raises(DatasetError, match="prepare_cuhk03.py"):
        get_dataset("CUHK03Labeled", str(tmp_path))


def test_cuhk03_np_folder_form(tmp_path):
    base = tmp_path / "cuhk03-np" / "detected"
    write_images(base / "bounding_box_train", ["0001_c1_01.png", "0001_c2_06.png"])
    write_images(base / "query", ["0003_c1_01.png"])
    write_images(base / "bounding_box_test", ["0003_c2_07.png"])
    dataset = get_dataset("CUHK03Detected", str(tmp_path))
    assert [(r["pid"], r["camid"]) for r in dataset.train] == [(1, 0), (1, 1)]


def test_msmt17_list_files(tmp_path):
    base = tmp_path / "MSMT17_V1"
    write_images(base / "train" / "0000", ["0000_000_01_0303morning_0015_0.jpg", "0000_001_05_0303noon_0020_1.jpg"])
    write_images(base / "test" / "0001", ["0001_000_03_0303morning_0015_0.jpg", "0001_003_07_0303noon_0015_0.jpg"])
    (base / "list_train.txt").write_text("0000/0000_000_01_0303morning_0015_0.jpg 0\n")
    (base / "list_val.txt").write_text("0000/0000_001_05_0303noon_0020_1.jpg 0\n")
    (base / "list_query.txt").write_text("0001/0001_000_03_0303morning_0015_0.jpg 1\n")
    (base / "list_gallery.txt").write_text("0001/0001_003_07_0303noon_0015_0.jpg 1\n\n")
    dataset = get_dataset("MSMT17", str(tmp_path))
    assert [(r["pid"], r["camid"]) for r in dataset.train] == [(0, 0), (0, 4)]
    assert [(r["pid"], r["camid"]) for r in dataset.query + dataset.gallery] == [(1, 2), (1, 6)]
    (base / "list_query.txt").write_text("garbage\n")
    with pytest.raises(DatasetError, match="list_query.txt:1"):
        get_dataset("MSMT17", str(tmp_path))


def test_partial_datasets_are_test_only_and_report_rank1_rank3(tmp_path, synthetic_root):
    write_images(tmp_path / "Partial-REID_Dataset" / "partial_body_images", ["001_01.jpg", "002_01.jpg"])
    write_images(tmp_path / "Partial-REID_Dataset" / "whole_body_images", ["001_01.jpg", "002_01.jpg"])
    write_images(tmp_path / "Partial_iLIDS" / "Probe", ["001.jpg", "002.jpg"])
    write_images(tmp_path / "Partial_iLIDS" / "Gallery", ["001.jpg", "002.jpg"])
    for name in ("PartialREID", "PartialiLIDS"):
        dataset = get_dataset(name, str(tmp_path))
        assert dataset.train == [] and [r["pid"] for r in dataset.query] == [1, 2]
        assert {r["camid"] for r in dataset.query} == {0} and {r["camid"] for r in dataset.gallery} == {1}
    synthetic = get_dataset("SyntheticPartial", synthetic_root)
    assert len(synthetic.query) == len(synthetic.gallery) == 3
    assert dataset_report_ranks("PartialREID") == dataset_report_ranks("PartialiLIDS") == (1, 3)
    assert dataset_report_ranks("Market1501") == (1, 5, 10)
    # the trainer's evaluator reports what the dataset's protocol asks for
    evaluator = DefaultTrainer.build_evaluator(get_cfg(), "PartialREID", 2)
    assert evaluator.report_ranks == (1, 3)


def test_custom_dataset_from_csv_and_from_folders(tmp_path):
    csv_root = tmp_path / "shop"
    write_images(csv_root / "imgs", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    (csv_root / "query.csv").write_text("path,pid\nimgs/a.jpg,5\n")
    (csv_root / "gallery.csv").write_text("path,pid,camid\nimgs/b.jpg,5,3\nimgs/c.jpg,6,3\n")
    register_custom_dataset("ShopCSV", str(csv_root))
    dataset = get_dataset("ShopCSV")
    assert dataset.train == [] and [(r["pid"], r["camid"]) for r in dataset.query] == [(5, 0)]
    assert [(r["pid"], r["camid"]) for r in dataset.gallery] == [(5, 3), (6, 3)]

    folder_root = tmp_path / "street"
    write_images(folder_root / "train" / "1", ["x_c2.jpg", "y_c3.jpg"])
    write_images(folder_root / "query" / "2", ["q.jpg"])
    write_images(folder_root / "gallery" / "2", ["g.jpg"])
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.CUSTOM", f"['Street={folder_root}']", "DATASETS.TEST", "('Street',)", "DATALOADER.NUM_WORKERS", "0"])
    loader, num_query = build_reid_test_loader(cfg, "Street")
    assert num_query == 1 and len(loader.dataset) == 2
    street = get_dataset("Street")
    assert [(r["pid"], r["camid"]) for r in street.train] == [(1, 2), (1, 3)]
    assert street.query[0]["camid"] == 0 and street.gallery[0]["camid"] == 1
    bad = get_cfg()
    bad.merge_from_list(["DATASETS.CUSTOM", "['NoPath']"])
    with pytest.raises(ConfigError, match="Name=path"):
        build_reid_test_loader(bad, "Street")
    (csv_root / "query.csv").write_text("file,id\nimgs/a.jpg,5\n")
    with pytest.raises(DatasetError, match="path,pid"):
        get_dataset("ShopCSV")


def test_evaluation_reads_only_query_and_gallery_so_a_broken_train_split_does_not_matter(tmp_path):
    from daaf.data import get_train_records

    root = tmp_path / "lobby"
    write_images(root / "imgs", ["a.jpg", "b.jpg", "c.jpg"])
    (root / "query.csv").write_text("path,pid,camid\nimgs/a.jpg,5,0\n")
    (root / "gallery.csv").write_text("path,pid,camid\nimgs/b.jpg,5,1\nimgs/c.jpg,6,1\n")
    (root / "train.csv").write_text("path,pid\nimgs/a.jpg,not-a-pid\n")  # a train split this evaluation never needs
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.CUSTOM", f"['Lobby={root}']", "DATALOADER.NUM_WORKERS", "0"])
    loader, num_query = build_reid_test_loader(cfg, "Lobby")
    assert num_query == 1 and [r["pid"] for r in loader.dataset.records] == [5, 5, 6]
    with pytest.raises(DatasetError, match=r"train.csv:2: pid and camid must be integers"):
        get_train_records(["Lobby"])
    with pytest.raises(DatasetError, match=r"train.csv:2"):  # the full summary still reads every split
        get_dataset("Lobby")


def test_test_only_dataset_cannot_be_trained_on(tmp_path, synthetic_root):
    from daaf.data import get_train_records

    with pytest.raises(DatasetError, match="SyntheticPartial has no training split"):
        get_train_records(["SyntheticPartial"], synthetic_root)


def test_a_synthetic_run_killed_between_images_and_labels_is_found_and_redrawn(tmp_path, monkeypatch, capsys):
    from daaf.data.synthetic import synthetic_dataset_complete, writer

    from conftest import load_tool, tiny_synthetic_config

    root = str(tmp_path)
    writer.generate_synthetic_dataset(root, tiny_synthetic_config(seed=1), progress=False)
    assert synthetic_dataset_complete(root)
    real_write = writer.write_label_file

    def killed_after_the_train_labels(path, *args, **kwargs):
        if not path.endswith("_train.json"):
            raise KeyboardInterrupt
        real_write(path, *args, **kwargs)

    monkeypatch.setattr(writer, "write_label_file", killed_after_the_train_labels)
    with pytest.raises(KeyboardInterrupt):  # seed 2's images are in, its query/gallery labels are not
        writer.generate_synthetic_dataset(root, tiny_synthetic_config(seed=2), progress=False)
    assert os.path.isdir(os.path.join(root, "SyntheticPersons")) and not synthetic_dataset_complete(root)
    monkeypatch.setattr(writer, "write_label_file", real_write)
    prepare = load_tool("prepare_synthetic", "datasets")
    argv = ["--root", root, "--num-train-ids", "8", "--num-test-ids", "6", "--num-cameras", "3", "--min-images-per-id", "4",
            "--max-images-per-id", "6", "--num-distractors", "4", "--num-junk", "2", "--num-partial-ids", "3", "--seed", "2"]  # fmt: skip
    assert prepare.main(argv) == 0
    assert "drawing it again" in capsys.readouterr().out and synthetic_dataset_complete(root)
    assert prepare.main(argv) == 0 and "exists with its labels" in capsys.readouterr().out
    # the labels are now those of the images: seed 2's, for every split
    for split in ("train", "query", "gallery"):
        with open(os.path.join(root, "daaf_labels", f"SyntheticPersons_{split}.json")) as f:
            assert json.load(f)["info"]["labeler_config"]["seed"] == 2


def test_occluded_duke_and_occluded_reid_layouts(tmp_path):
    duke = tmp_path / "Occluded_Duke"
    write_images(duke / "bounding_box_train", ["0001_c1_f0000001.jpg", "0001_c2_f0000002.jpg", "0003_c5_f0000003.jpg"])
    write_images(duke / "query", ["0005_c1_f0000004.jpg"])
    write_images(duke / "bounding_box_test", ["0005_c3_f0000005.jpg", "0000_c8_f0000006.jpg"])
    dataset = get_dataset("OccludedDuke", str(tmp_path))
    assert [(r["pid"], r["camid"]) for r in dataset.train] == [(1, 0), (1, 1), (3, 4)]
    assert [(r["pid"], r["camid"]) for r in dataset.gallery] == [(0, 7), (5, 2)]  # sorted by file name
    reid = tmp_path / "Occluded_REID"
    for split in ("occluded_body_images", "whole_body_images"):
        write_images(reid / split / "001", ["001_01.tif", "001_02.tif"])
        write_images(reid / split / "002", ["002_01.tif"])
    occluded = get_dataset("OccludedREID", str(tmp_path))
    assert occluded.train == [] and [r["pid"] for r in occluded.query] == [1, 1, 2]
    assert {r["camid"] for r in occluded.query} == {0} and {r["camid"] for r in occluded.gallery} == {1}
    assert occluded.query[0]["relpath"] == os.path.join("occluded_body_images", "001", "001_01.tif")
    (reid / "whole_body_images" / "002" / "notes_x.tif").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"notes_x.tif does not start with the identity's number"):
        get_dataset("OccludedREID", str(tmp_path))
