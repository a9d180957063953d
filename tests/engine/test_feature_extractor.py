"""FeatureExtractor: the features of tools/extract_features.py from three lines of Python, for
every kind of input, and one clear error for a bad one."""

import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from daaf import FeatureExtractor
from daaf.evaluation import compute_distance
from daaf.utils.errors import UserError

from conftest import REPO, run_tool_reporting_errors


@pytest.fixture(scope="module")
def extractor(trained):
    return FeatureExtractor.from_config(trained["daaf"], trained["weights"], device="cpu", batch_size=3)


def test_the_features_are_those_of_extract_features(trained, extractor, tmp_path, capsys):
    out = tmp_path / "f.npz"
    code, err = run_tool_reporting_errors(
        capsys, "extract_features", "--config-file", trained["daaf"], "--input", *trained["query"][:5], "--output", str(out),
        "--workers", "0", "MODEL.WEIGHTS", trained["weights"],
    )  # fmt: skip
    assert code == 0, err
    written = np.load(out)
    features = extractor(trained["query"][:5])
    assert isinstance(features, torch.Tensor) and features.shape == (5, 16) and features.dtype == torch.float32
    np.testing.assert_allclose(features.numpy(), written["features"], rtol=1e-5, atol=1e-6)
    assert list(written["file_names"]) == trained["query"][:5]


def test_every_kind_of_input_gives_the_same_features(trained, extractor):
    from PIL import Image

    paths = trained["query"][:4]
    bgr = [cv2.imread(p) for p in paths]
    rgb = [np.ascontiguousarray(b[:, :, ::-1]) for b in bgr]
    expected = extractor(paths)
    for features in (
        extractor(rgb),
        extractor(bgr, channel_order="BGR"),
        extractor([Image.fromarray(a) for a in rgb]),
        extractor(torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2)),
        extractor(rgb[:2] + paths[2:]),
    ):
        np.testing.assert_allclose(features.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(extractor(paths[0]).numpy(), expected[:1].numpy(), rtol=1e-5, atol=1e-6)  # a lone path
    assert isinstance(extractor(paths, as_numpy=True), np.ndarray)


def test_distances_and_top_k_are_the_evaluations(trained, extractor):
    query, gallery = trained["query"][:2], trained["query"][2:7]
    dist = extractor.distance(query, gallery)
    np.testing.assert_allclose(dist, compute_distance(extractor(query), extractor(gallery), "cosine"), rtol=1e-6)
    indices, distances = extractor.top_k(extractor(query), extractor(gallery), k=3)
    np.testing.assert_array_equal(indices, np.argsort(dist, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(distances, np.sort(dist, axis=1)[:, :3], rtol=1e-6)


@pytest.mark.parametrize(
    "images,message",
    [
        (np.zeros((64, 32), np.uint8), r"^image 0: expected an HxWx3 uint8 array \(RGB\), got uint8 of shape \(64, 32\)$"),
        ([np.zeros((64, 32, 3), np.float32)], r"^image 0: expected an HxWx3 uint8 array \(RGB\), got float32 of shape \(64, 32, 3\)$"),
        (torch.zeros(2, 3, 8, 4), r"^expected a uint8 tensor \(N, 3, H, W\) or \(3, H, W\), got torch.float32 of shape \(2, 3, 8, 4\)$"),
        ([3.5], r"^image 0: expected a file path, an HxWx3 uint8 array, a PIL image or a uint8 tensor, got float$"),
        (["no/such/crop.jpg"], r"^1 of 1 input images cannot be read: no/such/crop.jpg \(file not found\)"),
        ([], r"^no images to embed$"),
    ],
)
def test_a_bad_input_is_one_clear_error(extractor, images, message):
    with pytest.raises(UserError, match=message):
        extractor(images)


def test_the_readme_example_runs_as_written(trained, tmp_path):
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "FeatureExtractor" in b]
    assert len([line for line in code.splitlines() if line.strip()]) == 3
    run_dir = tmp_path / "output" / "synthetic" / "trinet_R18"
    run_dir.mkdir(parents=True)
    shutil.copy(trained["daaf"], run_dir / "config.yaml")
    shutil.copy(trained["weights"], run_dir / "model_final.pth")
    (tmp_path / "crops").mkdir()
    for name in re.findall(r'"crops/([^"]+)"', code):
        shutil.copy(trained["query"][0], tmp_path / "crops" / name)
    check = "\nprint(tuple(features.shape), features.dtype)\n"
    proc = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[-2] == "(2, 16) torch.float32"


def test_from_run_names_what_a_folder_lacks(tmp_path):
    with pytest.raises(UserError, match=f"^{tmp_path}: no config.yaml; is it the OUTPUT_DIR of a training"):
        FeatureExtractor.from_run(str(tmp_path))
    (tmp_path / "config.yaml").write_text("")
    with pytest.raises(UserError, match="holds no model_final.pth and no last_checkpoint"):
        FeatureExtractor.from_run(str(tmp_path))
