"""The inference tools: feature extraction, search, ranked lists, attention maps, export. Each runs
on a tiny DAAF model (ResNet-18, 64x32) with a checkpoint the test writes."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from daaf.analysis.branch_outputs import labelled_query_batch
from daaf.data import ReIDDatasetMapper
from daaf.modeling import build_model
from daaf.utils.visualization import MATCH_COLOUR, NON_MATCH_COLOUR

from conftest import REPO, load_tool, run_cli, run_tool, run_tool_reporting_errors
from reference_attention import grad_cam

PANEL_H, PANEL_W, PAD = 256, 128, 4  # ranked-list panels and grid padding


def expected_embeddings(trained, files):
    """The base network's embeddings, through the dataset mapper and a freshly built model."""
    model = build_model(trained["base_cfg"])
    state = torch.load(trained["weights"], weights_only=False)["model"]
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("branches.")})
    mapper = ReIDDatasetMapper(trained["base_cfg"], is_train=False)
    images = torch.stack([mapper({"file_name": f, "pid": 0, "camid": 0})["image"] for f in files])
    with torch.no_grad():
        return model.eval()(images).numpy()


def test_extracted_features_are_the_base_networks_embeddings(trained, tmp_path):
    folder = os.path.dirname(trained["query"][0])
    out = str(tmp_path / "f.npz")
    run_tool(
        "extract_features",
        "--config-file",
        trained["daaf"],
        "--input",
        os.path.join(folder, "*.jpg"),
        "--output",
        out,
        "--workers",
        "0",
        "MODEL.WEIGHTS",
        trained["weights"],
    )
    data = np.load(out)
    assert list(data["file_names"]) == trained["query"]
    np.testing.assert_allclose(data["features"], expected_embeddings(trained, trained["query"]), atol=1e-5)


def test_tool_errors_are_one_line(trained, tmp_path, capsys):
    folder = os.path.dirname(trained["query"][0])
    # the command line itself, once; the other cases run the same error path in this process
    missing = run_cli("extract_features", "--config-file", trained["base"], "--input", folder, "MODEL.WEIGHTS", str(tmp_path / "no.pth"))
    assert (
        missing.returncode == 2
        and missing.stderr.strip().splitlines()[-1]
        == f"error: checkpoint not found: {tmp_path / 'no.pth'} (MODEL.WEIGHTS or the last_checkpoint tag)"
    )
    assert "Traceback" not in missing.stderr

    code, err = run_tool_reporting_errors(
        capsys,
        "extract_features",
        "--config-file",
        trained["base"],
        "--input",
        folder,
        "MODEL.WEIGHTS",
        trained["weights"],
        "MODEL.HEADS.EMBEDDING_DIM",
        "32",
    )
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"error: {trained['weights']} does not fit the config")
    assert "heads." in line and "(16, 64) vs (32, 64)" in line

    (tmp_path / "bad.jpg").write_bytes(b"")
    code, err = run_tool_reporting_errors(
        capsys,
        "extract_features",
        "--config-file",
        trained["base"],
        "--input",
        str(tmp_path / "bad.jpg"),
        "--workers",
        "0",
        "MODEL.WEIGHTS",
        trained["weights"],
    )
    bad = tmp_path / "bad.jpg"
    assert (
        code == 2
        and err.strip().splitlines()[-1] == f"error: 1 of 1 input images cannot be read: {bad} (empty file); replace or remove them"
    )

    code, err = run_tool_reporting_errors(
        capsys,
        "extract_features",
        "--config-file",
        trained["base"],
        "--input",
        str(tmp_path / "*.png"),
        "MODEL.WEIGHTS",
        trained["weights"],
    )
    assert code == 2 and "no images found for" in err.strip().splitlines()[-1]


def test_search_ranks_the_query_itself_first_and_draws_the_lists(trained, tmp_path):
    gallery = trained["query"]
    queries = gallery[:2]
    out = str(tmp_path / "search.png")
    run_tool(
        "search",
        "--config-file",
        trained["base"],
        "--query",
        *queries,
        "--gallery",
        *gallery,
        "--top-k",
        "4",
        "--output",
        out,
        "--workers",
        "0",
        "MODEL.WEIGHTS",
        trained["weights"],
    )
    picture = cv2.imread(out)
    assert picture.shape == (2 * (PANEL_H + PAD) + PAD, 5 * (PANEL_W + PAD) + PAD, 3)
    from daaf.tools import search

    features = expected_embeddings(trained, gallery)
    indices, distances = search.top_k_exact(features[:2], features, "cosine", 4)
    assert list(indices[:, 0]) == [0, 1] and np.allclose(distances[:, 0], 0, atol=1e-5)
    assert (np.diff(distances, axis=1) >= 0).all()


def _write_solid(path, value):
    cv2.imwrite(path, np.full((64, 32, 3), value, np.uint8))
    return path


def test_ranked_list_picture_orders_queries_and_marks_matches(tmp_path, capsys, monkeypatch):
    files = [_write_solid(str(tmp_path / f"g{i}.png"), 20 * i) for i in range(5)]
    q_files = [_write_solid(str(tmp_path / f"q{i}.png"), 200) for i in range(2)]
    ranks = {
        "indices": np.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]),
        "distances": np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]], dtype=np.float32),
        "query_files": np.array(q_files),
        "gallery_files": np.array(files),
        "query_pids": np.array([1, 2]),
        "gallery_pids": np.array([1, 2, 1, 2, 3]),
        "query_camids": np.array([0, 0]),
        "gallery_camids": np.array([0, 1, 1, 1, 1]),
        "query_ap": np.array([1.0, 0.5], dtype=np.float32),
        "cmc": np.ones(5, dtype=np.float32),
        "query_first_match": np.array([1, 2]),
    }
    path = str(tmp_path / "ranks.npz")
    np.savez(path, **ranks)
    out = str(tmp_path / "ranked.png")
    run_tool("visualize_ranked_list", "--ranks", path, "--order", "worst", "--top-k", "3", "--output", out)
    picture = cv2.imread(out)[:, :, ::-1]
    assert picture.shape == (2 * (PANEL_H + PAD) + PAD, 4 * (PANEL_W + PAD) + PAD, 3)

    def border(row, column):
        return tuple(int(v) for v in picture[PAD + row * (PANEL_H + PAD) + PANEL_H - 2, PAD + column * (PANEL_W + PAD) + 1])

    # worst first: query 1 (AP 0.5) ranks gallery 4 (pid 3), 3 (pid 2), 2 (pid 1)
    assert [border(0, c) for c in (1, 2, 3)] == [NON_MATCH_COLOUR, MATCH_COLOUR, NON_MATCH_COLOUR]
    # query 0: gallery 0 (same pid, same camera) is junk and skipped -> 1 (pid 2), 2 (pid 1), 3 (pid 2)
    assert [border(1, c) for c in (1, 2, 3)] == [NON_MATCH_COLOUR, MATCH_COLOUR, NON_MATCH_COLOUR]

    # each query says where its first true match is (it may lie beyond the top k drawn)
    from daaf.evaluation.ranked_list import load_ranks, ranked_list_figure
    from daaf.utils import visualization

    labels = []
    drawing = visualization.ranked_list_row
    monkeypatch.setattr(visualization, "ranked_list_row", lambda *a: labels.append(a[-1]) or drawing(*a))
    ranked_list_figure(load_ranks(path), [1, 0], 1)
    assert labels == ["q1 AP 50.0%, 1st match #2", "q0 AP 100.0%, 1st match #1"]
    monkeypatch.undo()

    # without --output the picture goes beside the ranks file, not into the working directory
    run_tool("visualize_ranked_list", "--ranks", path, "--top-k", "3")
    assert cv2.imread(str(tmp_path / "ranked_list.png")).shape == picture.shape[:2] + (3,)
    assert not os.path.exists("ranked_list.png")

    code, err = run_tool_reporting_errors(capsys, "visualize_ranked_list", "--ranks", str(tmp_path / "none.npz"))
    assert code == 2 and "ranks file not found" in err and "TEST.SAVE_RANKS True" in err


def test_forward_mode_cams_equal_reverse_mode_grad_cam_of_each_target(trained):
    from daaf.analysis.attention_maps import grad_cam_maps

    model = trained["model"].eval()
    images = torch.randint(0, 256, (2, 3, 64, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cams = grad_cam_maps(model, images, stage="stem")
    assert set(cams) == {"holistic", *(f"group{g}" for g in range(6))}
    with torch.enable_grad():
        features = model.backbone(model.preprocess_image(images))
        activations = features["stem"]
        group = model.channel_groups()[3]
        expected = {
            "holistic": grad_cam(model.heads(features[model.head_in_feature]), activations),
            "group3": grad_cam(features[group.stage][:, group.channels].mean(dim=(-2, -1)), activations),
        }
    for name, reference in expected.items():
        assert cams[name].shape == (2, 16, 8) and reference.abs().max() > 0  # stem: stride 4
        torch.testing.assert_close(cams[name], reference, rtol=1e-4, atol=1e-6 * float(reference.abs().max()))


def brute_force_paper_map(targets, activations):
    """(1/N) sum_n (1/C) sum_c |d targets[:, n] / dA_c * A_c|, one backward per component n."""
    total = torch.zeros(activations.shape[0], *activations.shape[-2:])
    for n in range(targets.shape[1]):
        (grad,) = torch.autograd.grad(targets[:, n].sum(), activations, retain_graph=True)
        total += (grad * activations).abs().mean(dim=1)
    return total / targets.shape[1]


def test_paper_attention_maps_are_eqs_5_to_8_at_conv1_and_the_groups_differ(trained):
    from daaf.analysis.attention_maps import mean_gradient_times_input, paper_attention_maps

    model = trained["model"].eval()
    images = torch.randint(0, 256, (1, 3, 32, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))  # small: fast
    maps = paper_attention_maps(model, images)
    assert set(maps) == {"holistic", *(f"group{g}" for g in range(6))}
    captured = []
    handle = model.backbone.stem[2].register_forward_hook(lambda m, i, o: captured.append(o))  # conv1 + BN + ReLU
    with torch.enable_grad():
        features = model.backbone(model.preprocess_image(images))
        handle.remove()
        conv1 = captured[0]
        pab = model.branches["PAB"]
        pooled = features[pab.source][:, pab.group_slice(2)].mean(dim=(-2, -1))  # PAM: GAP of the group's channels
        expected = {"holistic": brute_force_paper_map(model.heads(features[model.head_in_feature]), conv1).detach()}
        # a partial map is the same computation on the pooled channels of its group: checked on 8
        # of group 2's 85 channels, in chunks of 3 components (the last one partial)
        some = brute_force_paper_map(pooled[:, :8], conv1).detach()
        chunked = mean_gradient_times_input(pooled[:, :8], conv1, max_elements=3 * conv1.numel()).detach()
        torch.testing.assert_close(chunked, some, rtol=1e-4, atol=1e-5 * float(some.max()))
        expected["group2"] = mean_gradient_times_input(pooled, conv1).detach()  # which channels, pooled how
    for name, reference in expected.items():
        assert maps[name].shape == (1, 16, 8) and reference.min() >= 0 and reference.max() > 0  # before max-pool: stride 2
        torch.testing.assert_close(maps[name], reference, rtol=1e-4, atol=1e-5 * float(reference.max()))

    # a partial map is not a copy of the holistic one (as Grad-CAM's were at the stem)
    def unit(m):
        return m / m.flatten(1).amax(1)[:, None, None]

    for g in range(6):
        assert (unit(maps[f"group{g}"]) - unit(maps["holistic"])).abs().max() > 0.05
    # the picture names each partial map's correlation with the holistic one
    from daaf.analysis.attention_maps import map_correlation

    x = torch.rand(2, 5, 4)
    assert map_correlation(x, 3 * x + 1) == pytest.approx([1.0, 1.0]) and map_correlation(x, -x) == pytest.approx([-1.0, -1.0])
    r = map_correlation(maps["group0"], maps["holistic"])
    assert all(-1 <= v < 1 for v in r)


def test_attention_picture_has_a_row_per_image_and_a_column_per_map(trained, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "attention.png")
    run_tool(
        "visualize_attention",
        "--config-file",
        trained["daaf"],
        "--input",
        *trained["query"][:2],
        "--branches",
        "--output",
        out,
        "MODEL.WEIGHTS",
        trained["weights"],
    )
    picture = cv2.imread(out)
    # input + HAM + 6 PAMs + HAB + 6 PAB groups; 64x32 crops are drawn at 128x64
    columns = 1 + 1 + 6 + 1 + 6 + 1  # ... + the colour key
    assert picture.shape == (2 * (128 + PAD) + PAD, columns * (64 + PAD) + PAD, 3)
    from daaf.analysis import attention_maps

    # a model without branches is refused before any map is computed
    monkeypatch.setitem(attention_maps.ATTENTION_MAP_METHODS, "paper", lambda *a, **k: pytest.fail("computed maps first"))
    code, err = run_tool_reporting_errors(
        capsys,
        "visualize_attention",
        "--config-file",
        trained["base"],
        "--input",
        trained["query"][0],
        "--branches",
        "--output",
        out,
        "MODEL.WEIGHTS",
        trained["weights"],
    )
    assert code == 2 and "no attention branches" in err.strip().splitlines()[-1]


def test_every_export_format_loads_as_export_json_says_and_matches_pytorch(trained, tmp_path):
    from daaf.engine.export import example_images

    out = tmp_path / "exported"
    argv = ["--config-file", trained["daaf"], "--output", str(out), "--format", "export", "onnx", "torchscript"]
    assert run_tool("export_model", *argv, "MODEL.WEIGHTS", trained["weights"]) == 0
    report = json.loads((out / "export.json").read_text())
    base = build_model(trained["base_cfg"])
    assert report["parameters"] == sum(p.numel() for p in base.parameters())
    assert report["parameters"] < sum(p.numel() for p in trained["model"].parameters())  # branches are gone
    assert set(report["files"]) == {"export", "onnx", "torchscript"}
    assert all(entry["max_abs_diff"] <= 1e-4 for entry in report["files"].values())
    cfg = trained["cfg"]
    assert report["test_time_augmentation"]["flip"] == cfg.TEST.FLIP.ENABLED and report["metric"] == cfg.TEST.METRIC
    assert report["preprocessing"]["pixel_mean"] == list(cfg.MODEL.PIXEL_MEAN) and "64x32" in report["preprocessing"]["input"]

    images = example_images(64, 32, batch=5, seed=3)  # another batch size than the export's
    state = torch.load(trained["weights"], weights_only=False)["model"]
    base.load_state_dict({k: v for k, v in state.items() if not k.startswith("branches.")})
    with torch.no_grad():
        reference = base.eval()(images).numpy()
    for fmt, entry in report["files"].items():
        namespace = {"images": images}
        with torch.no_grad():
            exec("\n".join(entry["load"]), namespace)  # the snippet export.json gives, as written
        features = namespace["features"]
        features = features.numpy() if isinstance(features, torch.Tensor) else features
        assert features.shape == (5, 16), fmt
        np.testing.assert_allclose(features, reference, atol=1e-4, err_msg=fmt)


def test_the_default_export_is_the_exported_program_and_onnx():
    args = load_tool("export_model").parser().parse_args(["--config-file", "c.yaml"])
    assert args.format == ["export", "onnx"]


ANALYSIS = os.path.join("projects", "DAAF", "analysis")


def test_conv_shuffle_diagonal_is_what_the_trained_branch_predicts(trained, tmp_path, capsys):
    tool = load_tool("conv_shuffle", ANALYSIS)
    model = trained["model"].eval()
    batch = labelled_query_batch(trained["cfg"], 6)
    assert batch.person_labels.keypoints.shape == (6, 17, 3) and (batch.person_labels.keypoints[..., 2] > 0).any()
    maps, groups = tool.conv_shuffle_maps(model, batch.images)
    assert len(maps) == len(groups) == 6
    with torch.no_grad():
        own = model.branches["PAB"].predict(model.backbone(model.preprocess_image(batch.images)))
    for j, prediction in enumerate(own):
        torch.testing.assert_close(maps[j][j], prediction)
        assert maps[(j + 1) % 6][j].shape == prediction.shape  # conv j reads another group's channels
    landing = tool.peak_landing(maps, batch.person_labels.keypoints, groups, batch.images.shape[-2:])

    out = tmp_path / "shuffle"
    run_tool(
        "conv_shuffle",
        "--config-file",
        trained["daaf"],
        "--num-images",
        "6",
        "--output-dir",
        str(out),
        "MODEL.WEIGHTS",
        trained["weights"],
        folder=ANALYSIS,
    )
    saved = np.load(out / "conv_shuffle.npz")
    np.testing.assert_allclose(saved["on_channels"], landing["on_channels"], atol=1e-6)
    np.testing.assert_allclose(saved["on_conv"], landing["on_conv"], atol=1e-6)
    np.testing.assert_allclose(np.diag(saved["on_channels"]), np.diag(saved["on_conv"]))  # i = j: the same group
    printed = capsys.readouterr().out
    assert f"{landing['follows_channels']:.3f} follow the channels" in printed and "group i's keypoints (the channels'):" in printed
    assert cv2.imread(str(out / "conv_shuffle_matrix.png")) is not None
    assert cv2.imread(str(out / "conv_shuffle_maps.png")).shape[1] == (1 + 36 + 1) * (64 + PAD) + PAD


def test_conv_shuffle_tells_outputs_that_follow_the_channels_from_outputs_that_follow_the_conv():
    tool = load_tool("conv_shuffle", ANALYSIS)
    groups = [[0, 1], [2], [3, 4]]
    keypoints = torch.zeros(2, 17, 3)
    spots = {0: (4, 4), 1: (28, 4), 2: (16, 30), 3: (4, 60), 4: (28, 60)}  # far apart in a 64x32 crop
    for k, (x, y) in spots.items():
        keypoints[:, k] = torch.tensor([x, y, 2.0])

    def peaked_at(keypoint, channels):
        heatmap = torch.zeros(2, channels, 64, 32)
        x, y = spots[keypoint]
        heatmap[:, :, y, x] = 1.0
        return heatmap

    follow_channels = [[peaked_at(groups[i][0], len(groups[j])) for j in range(3)] for i in range(3)]
    landing = tool.peak_landing(follow_channels, keypoints, groups, (64, 32))
    assert landing["follows_channels"] == 1.0
    np.testing.assert_array_equal(landing["on_channels"], np.ones((3, 3)))
    np.testing.assert_array_equal(landing["on_conv"], np.eye(3))
    follow_conv = [[peaked_at(groups[j][0], len(groups[j])) for j in range(3)] for i in range(3)]
    landing = tool.peak_landing(follow_conv, keypoints, groups, (64, 32))
    assert landing["follows_channels"] == 0.0
    np.testing.assert_array_equal(landing["on_conv"], np.ones((3, 3)))
    keypoints[..., 2] = 0  # nothing visible: no peak lands anywhere
    assert np.isnan(tool.peak_landing(follow_conv, keypoints, groups, (64, 32))["follows_channels"])


def test_branch_outputs_picture(trained, tmp_path, capsys):
    out = str(tmp_path / "branches.png")
    run_tool(
        "branch_outputs",
        "--config-file",
        trained["daaf"],
        "--input",
        *trained["query"][:2],
        "--output",
        out,
        "--pck",
        "5",
        "MODEL.WEIGHTS",
        trained["weights"],
        folder=ANALYSIS,
    )
    from daaf.analysis.branch_outputs import format_pck, keypoint_pck

    batch = labelled_query_batch(trained["cfg"], 5)
    expected = format_pck(keypoint_pck(trained["model"], batch.images, batch.person_labels.keypoints), 0.1)
    assert capsys.readouterr().out.splitlines()[-1] == f"SyntheticPersons query (5 crops): {expected}"
    assert cv2.imread(out).shape == (2 * (128 + PAD) + PAD, (1 + 1 + 6 + 1) * (64 + PAD) + PAD, 3)  # input, HAB, 6 PAB groups, colour key
    # without --input: the labelled query crops, the label file's mask beside HAB's
    labelled = str(tmp_path / "labelled.png")
    run_tool(
        "branch_outputs", "--config-file", trained["daaf"], "--num-images", "2", "--output", labelled,
        "MODEL.WEIGHTS", trained["weights"], folder=ANALYSIS,
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "2 crops x [input, HAB, label mask, PAB head," in printed
    grid = cv2.imread(labelled)[:, :, ::-1]
    assert grid.shape == (2 * (128 + PAD) + PAD, (1 + 2 + 6 + 1) * (64 + PAD) + PAD, 3)
    from daaf.analysis.branch_outputs import branch_predictions

    maps = branch_predictions(trained["model"], batch.images[:2], label_masks=batch.person_labels.masks[:2])
    assert list(maps)[:2] == ["HAB", "label mask"]
    torch.testing.assert_close(maps["label mask"], batch.person_labels.masks[:2].float())
    base = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, ANALYSIS, "branch_outputs.py"),
            "--config-file",
            trained["base"],
            "--input",
            trained["query"][0],
            "MODEL.WEIGHTS",
            trained["weights"],
        ],
        capture_output=True,
        text=True,
    )
    assert base.returncode == 2 and "this model has no attention branches" in base.stderr.strip().splitlines()[-1]


class _FakeFaissIndex:
    """A stand-in for faiss' flat indexes (faiss is optional and not installed in CI)."""

    def __init__(self, dim, inner_product):
        self.dim, self.inner_product, self.data = dim, inner_product, np.zeros((0, dim), np.float32)

    def add(self, x):
        self.data = np.concatenate([self.data, x])

    def search(self, q, k):
        scores = q @ self.data.T if self.inner_product else ((q[:, None] - self.data[None]) ** 2).sum(-1)
        order = np.argsort(-scores if self.inner_product else scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), order


def test_faiss_search_agrees_with_exact_search(monkeypatch, capsys):
    import types

    from daaf.tools import search

    rng = np.random.default_rng(0)
    query, gallery = rng.normal(size=(5, 8)).astype(np.float32), rng.normal(size=(30, 8)).astype(np.float32)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(Exception, match=r"--faiss: faiss is not installed \(pip install faiss-cpu\)"):
        search.top_k_faiss(query, gallery, "cosine", 4)
    # the command says so before it extracts any feature (no config or checkpoint is even read)
    assert run_tool_reporting_errors(
        capsys, "search", "--config-file", "no-such.yaml", "--query", "q.jpg", "--gallery", "g/", "--faiss", "MODEL.WEIGHTS", "none.pth"
    ) == (2, "error: --faiss: faiss is not installed (pip install faiss-cpu)\n")
    fake = types.SimpleNamespace(IndexFlatIP=lambda d: _FakeFaissIndex(d, True), IndexFlatL2=lambda d: _FakeFaissIndex(d, False))
    monkeypatch.setitem(sys.modules, "faiss", fake)
    for metric in ("cosine", "euclidean"):
        exact_idx, exact_dist = search.top_k_exact(query, gallery, metric, 4)
        faiss_idx, faiss_dist = search.top_k_faiss(query, gallery, metric, 4)
        np.testing.assert_array_equal(faiss_idx, exact_idx)
        np.testing.assert_allclose(faiss_dist, exact_dist, atol=1e-4)
