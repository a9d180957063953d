import os

import numpy as np
import pytest
import torch

from daaf.data import ReIDBatch
from daaf.evaluation import (
    RankAccumulator,
    ReIDEvaluator,
    compute_distance,
    compute_distance_chunks,
    evaluate_rank,
    re_ranking,
    re_ranking_features,
    top_k,
)
from daaf.evaluation.rank import query_metrics_torch

from reference_evaluation import evaluate_rank_reference, re_ranking_reference


def random_problem(seed, q=40, g=120, ties=False, num_ids=15, num_cams=3):
    rng = np.random.default_rng(seed)
    q_pids, g_pids = rng.integers(0, num_ids, q), rng.integers(0, num_ids + 5, g)
    q_cams, g_cams = rng.integers(0, num_cams, q), rng.integers(0, num_cams, g)
    dist = rng.integers(0, 6, (q, g)).astype(np.float32) if ties else rng.random((q, g), dtype=np.float32)
    return dist, q_pids, g_pids, q_cams, g_cams


@pytest.fixture(params=["numba", "numpy", "torch"])
def backend(request, monkeypatch):
    """The evaluation through each of its backends (torch: the accelerator's path on CPU tensors)."""
    from daaf.evaluation import kernels

    if request.param == "numba" and kernels.numba is None:
        pytest.skip("numba is not installed (optional: the compiled evaluation kernels)")
    monkeypatch.setenv("DAAF_EVAL_BACKEND", request.param)
    return request.param


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", ["random", "ties", "infinite", "short gallery"])
def test_rank_metrics_match_the_per_query_reference(seed, case, backend):
    if case == "short gallery":
        problem = random_problem(seed, q=6, g=9, num_ids=3, num_cams=2)
    else:
        problem = random_problem(seed, ties=case != "random")
    if case == "infinite":
        problem[0][problem[0] == 5] = np.inf  # +inf ties with the removed items
    cmc, mAP, mINP = evaluate_rank(*problem, max_rank=50)
    ref_cmc, ref_mAP, ref_mINP = evaluate_rank_reference(*problem, max_rank=50)
    assert cmc.shape == (50,)
    np.testing.assert_allclose(cmc, ref_cmc, atol=1e-6)
    assert mAP == pytest.approx(ref_mAP, abs=1e-9) and mINP == pytest.approx(ref_mINP, abs=1e-9)
    assert 0 <= mINP <= mAP <= 1


def test_rank_metrics_of_a_strong_model_with_exact_ties_match_the_reference(backend):
    rng = np.random.default_rng(3)
    ids, q, g = 100, 60, 1000
    centers = rng.normal(size=(ids, 16))
    q_pids, g_pids = rng.integers(0, ids, q), rng.integers(0, ids, g)
    qf = centers[q_pids] + 0.3 * rng.normal(size=(q, 16))
    gf = centers[g_pids] + 0.3 * rng.normal(size=(g, 16))
    dist = np.sqrt(((qf[:, None] - gf[None]) ** 2).sum(-1)).astype(np.float32)
    dist[:, 50:60] = dist[:, 40:50]  # exact ties, broken by gallery index
    problem = (dist, q_pids, g_pids, rng.integers(0, 3, q), rng.integers(0, 3, g))
    expected = evaluate_rank_reference(*problem, max_rank=50)
    got = evaluate_rank(*problem, max_rank=50)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
    assert got[1] == pytest.approx(expected[1]) and got[2] == pytest.approx(expected[2])
    assert expected[1] > 0.5  # a strong model indeed


def test_an_unknown_or_missing_backend_is_one_clear_error(monkeypatch):
    from daaf.evaluation import evaluation_backend, kernels
    from daaf.utils.errors import UserError

    monkeypatch.setenv("DAAF_EVAL_BACKEND", "fortran")
    with pytest.raises(UserError, match="DAAF_EVAL_BACKEND='fortran': expected one of numba, numpy, torch"):
        evaluate_rank(*random_problem(0))
    assert evaluation_backend("meta") == "torch"  # data on an accelerator is ranked where it lies
    monkeypatch.setattr(kernels, "numba", None)
    monkeypatch.setenv("DAAF_EVAL_BACKEND", "numba")
    with pytest.raises(UserError, match="numba is not installed"):
        evaluation_backend()
    monkeypatch.delenv("DAAF_EVAL_BACKEND")
    assert evaluation_backend() == "numpy"


def test_torch_rank_path_skips_queries_without_match_and_rejects_nan():
    dist = np.array([[0.1, 0.5, 0.9], [0.2, 0.3, 0.4]], dtype=np.float32)
    first, ap, inp = query_metrics_torch(torch.from_numpy(dist), [1, 9], [1, 5, 1], [1, 1], [1, 0, 2])
    np.testing.assert_array_equal(first, [1, -1])
    assert ap[0] == pytest.approx(0.5) and inp[0] == pytest.approx(0.5) and np.isnan(ap[1]) and np.isnan(inp[1])
    dist[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        query_metrics_torch(torch.from_numpy(dist), [1, 9], [1, 5, 1], [1, 1], [1, 0, 2])


def test_distances_and_top_k_kept_as_tensors_equal_the_arrays():
    torch.manual_seed(0)
    qf, gf = torch.randn(13, 8), torch.randn(40, 8)
    arrays = list(compute_distance_chunks(qf, gf, "euclidean", chunk_size=5))
    tensors = list(compute_distance_chunks(qf, gf, "euclidean", chunk_size=5, keep_on_device=True))
    assert all(isinstance(t, torch.Tensor) and s == s2 for (t, s), (_, s2) in zip(tensors, arrays))
    for (a, _), (t, _) in zip(arrays, tensors):
        np.testing.assert_array_equal(a, t.numpy())
        for got, want in zip(top_k(t, 7), top_k(a, 7)):
            np.testing.assert_array_equal(got, want)


def test_short_gallery_shorter_than_max_rank(backend):
    problem = random_problem(1, q=6, g=9, num_ids=3, num_cams=2)
    cmc, mAP, _ = evaluate_rank(*problem, max_rank=50)
    ref_cmc, ref_mAP, _ = evaluate_rank_reference(*problem, max_rank=50)
    np.testing.assert_allclose(cmc, ref_cmc)
    assert cmc[-1] == pytest.approx(1.0) and mAP == pytest.approx(ref_mAP)


def test_queries_without_match_are_skipped(backend):
    dist = np.array([[0.1, 0.5, 0.9], [0.2, 0.3, 0.4]], dtype=np.float32)
    # query 1 (pid 9) has no match; query 0's match at camera 1 is junk, camera 2 at rank 2
    cmc, mAP, mINP = evaluate_rank(dist, np.array([1, 9]), np.array([1, 5, 1]), np.array([1, 1]), np.array([1, 0, 2]))
    assert cmc[0] == 0 and cmc[1] == 1 and mAP == pytest.approx(0.5) and mINP == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_rank(dist, np.array([8, 9]), np.array([1, 5, 1]), np.array([1, 1]), np.array([1, 0, 2]))


def test_perfect_ranking_has_map_one(backend):
    g_pids = np.repeat(np.arange(10), 3)
    q_pids = np.arange(10)
    dist = (q_pids[:, None] != g_pids[None, :]).astype(np.float32) + np.random.default_rng(0).random((10, 30)) * 0.1
    cmc, mAP, mINP = evaluate_rank(dist, q_pids, g_pids, np.zeros(10), np.ones(30))
    assert cmc[0] == 1.0 and mAP == pytest.approx(1.0) and mINP == pytest.approx(1.0)


def test_chunked_equals_unchunked_and_features_path_equals_matrix(backend):
    problem = random_problem(3, q=53, g=97)
    whole = evaluate_rank(*problem, chunk_size=10_000)
    chunked = evaluate_rank(*problem, chunk_size=7)
    np.testing.assert_array_equal(whole[0], chunked[0])
    assert whole[1] == chunked[1] and whole[2] == chunked[2]
    torch.manual_seed(0)
    qf, gf = torch.randn(53, 16), torch.randn(97, 16)
    for metric in ("cosine", "euclidean"):
        full = compute_distance(qf, gf, metric)
        expected = (
            1 - torch.nn.functional.normalize(qf) @ torch.nn.functional.normalize(gf).T if metric == "cosine" else torch.cdist(qf, gf)
        )
        np.testing.assert_allclose(full, expected.numpy(), atol=1e-5)
        q_pids, g_pids, q_camids, g_camids = (np.asarray(a) for a in problem[1:])
        accumulator = RankAccumulator(50)
        for dist, rows in compute_distance_chunks(qf, gf, metric, chunk_size=8):
            accumulator.add(dist, q_pids[rows], g_pids, q_camids[rows], g_camids)
        from_chunks = accumulator.result()
        from_matrix = evaluate_rank(full, *problem[1:])
        np.testing.assert_array_equal(from_chunks[0], from_matrix[0])
        assert from_chunks[1] == pytest.approx(from_matrix[1], abs=1e-12)


def euclidean(a, b):
    return torch.cdist(torch.from_numpy(a).double(), torch.from_numpy(b).double()).float().numpy()


@pytest.mark.parametrize("seed,k1,k2,lam", [(0, 20, 6, 0.3), (1, 5, 1, 0.5), (2, 10, 3, 0.1), (3, 4, 5, 0.0)])
def test_re_ranking_matches_published_algorithm(seed, k1, k2, lam, backend):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(12, 8))
    qf = (centers[rng.integers(0, 12, 30)] + 0.5 * rng.normal(size=(30, 8))).astype(np.float32)
    gf = (centers[rng.integers(0, 12, 90)] + 0.5 * rng.normal(size=(90, 8))).astype(np.float32)
    qg, qq, gg = euclidean(qf, gf), euclidean(qf, qf), euclidean(gf, gf)
    expected = re_ranking_reference(qg, qq, gg, k1, k2, lam)
    got = re_ranking(qg, qq, gg, k1, k2, lam, chunk_size=17)
    assert got.shape == (30, 90) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-4
    from_features = re_ranking_features(qf, gf, "euclidean", k1, k2, lam, chunk_size=33)
    assert np.abs(from_features - expected).max() <= 1e-4


def test_compiled_nearest_neighbours_order_ties_by_column_like_a_stable_sort():
    from daaf.evaluation import kernels

    if kernels.numba is None:
        pytest.skip("numba is not installed (optional: the compiled evaluation kernels)")
    rng = np.random.default_rng(0)
    block = rng.random((40, 300)).astype(np.float32)
    block[3, [7, 9, 200]] = 0.001
    indices, values, row_max = kernels.nearest_neighbours(block, 12)
    order = np.argsort(block, axis=1, kind="stable")[:, :12]
    np.testing.assert_array_equal(indices, order)
    np.testing.assert_array_equal(values, np.take_along_axis(block, order, 1))
    np.testing.assert_array_equal(row_max, block.max(1))


def test_re_ranking_changes_rankings_and_rejects_bad_k2():
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(10, 4)).astype(np.float32), rng.normal(size=(40, 4)).astype(np.float32)
    qg, qq, gg = euclidean(qf, gf), euclidean(qf, qf), euclidean(gf, gf)
    assert not np.allclose(re_ranking(qg, qq, gg), qg)
    with pytest.raises(ValueError, match="k2"):
        re_ranking(qg, qq, gg, k1=3, k2=9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_re_ranking_on_gpu_matches_cpu():
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(20, 6)).astype(np.float32), rng.normal(size=(60, 6)).astype(np.float32)
    qg, qq, gg = euclidean(qf, gf), euclidean(qf, qf), euclidean(gf, gf)
    assert np.abs(re_ranking(qg, qq, gg, device="cuda") - re_ranking(qg, qq, gg)).max() <= 1e-4


def feed(evaluator, features, pids, camids, batch=5):
    for s in range(0, len(features), batch):
        names = [f"img{i}.jpg" for i in range(s, min(s + batch, len(features)))]
        inputs = ReIDBatch(
            torch.zeros(len(names), 3, 1, 1), torch.as_tensor(pids[s : s + batch]), torch.as_tensor(camids[s : s + batch]), names
        )
        evaluator.process(inputs, torch.as_tensor(features[s : s + batch]))


def evaluator_inputs(seed=0, q=12, g=40, d=8):
    rng = np.random.default_rng(seed)
    pids = np.concatenate([np.arange(q) % 6, rng.integers(0, 8, g)])
    camids = np.concatenate([np.zeros(q, int), rng.integers(0, 3, g)])
    centers = rng.normal(size=(8, d))
    features = (centers[pids] + 0.8 * rng.normal(size=(q + g, d))).astype(np.float32)
    return features, pids, camids


def test_every_evaluation_keeps_per_query_results_whose_means_are_its_metrics(tmp_path):
    from daaf.evaluation import load_per_query, per_query_metric

    features, pids, camids = evaluator_inputs(seed=3)
    pids[0] = 99  # a query without a true match: NaN, outside every mean
    evaluator = ReIDEvaluator(12, report_ranks=(1, 3), output_dir=str(tmp_path), save_ranks=False, dataset_name="toy")
    feed(evaluator, features, pids, camids)
    results = evaluator.evaluate()
    assert not (tmp_path / "ranks.npz").exists()  # the ranked lists only on request, the per-query numbers always
    data = load_per_query(str(tmp_path / "per_query.npz"))
    assert list(data["query_files"]) == [f"img{i}.jpg" for i in range(12)] and list(data["query_pids"]) == list(pids[:12])
    for metric in ("mAP", "mINP", "Rank-1", "Rank-3"):
        values = per_query_metric(data, metric)
        assert np.isnan(values[0]) and np.isfinite(values[1:]).all()
        assert np.nanmean(values) == pytest.approx(results[metric], rel=1e-5), metric


def test_reid_evaluator_reports_metrics_and_writes_cmc_plot_and_ranks(tmp_path):
    features, pids, camids = evaluator_inputs()
    evaluator = ReIDEvaluator(
        12, metric="euclidean", report_ranks=(1, 3), output_dir=str(tmp_path), save_ranks=True, max_rank=10, dataset_name="toy"
    )
    feed(evaluator, features, pids, camids)
    results = evaluator.evaluate()
    assert list(results) == ["Rank-1", "Rank-3", "mAP", "mINP"]
    dist = compute_distance(features[:12], features[12:], "euclidean")
    cmc, mAP, mINP = evaluate_rank(dist, pids[:12], pids[12:], camids[:12], camids[12:], max_rank=10)
    assert results["Rank-1"] == pytest.approx(cmc[0] * 100) and results["mAP"] == pytest.approx(mAP * 100)
    assert os.path.getsize(tmp_path / "cmc.png") > 1000
    ranks = np.load(tmp_path / "ranks.npz")
    assert ranks["indices"].shape == (12, 10)
    np.testing.assert_array_equal(ranks["indices"][:, 0], dist.argmin(1))
    assert list(ranks["query_files"][:2]) == ["img0.jpg", "img1.jpg"]
    assert ranks["query_ap"].shape == (12,) and np.nanmean(ranks["query_ap"]) * 100 == pytest.approx(results["mAP"], rel=1e-5)
    # the rank of each query's first true match, also where it lies beyond the saved top k
    first = ranks["query_first_match"]
    valid = first > 0
    assert (first[valid] == 1).mean() == pytest.approx(results["Rank-1"] / 100)
    for q in np.flatnonzero(valid):
        order = np.argsort(dist[q], kind="stable")
        keep = ~((pids[12:][order] == pids[q]) & (camids[12:][order] == camids[q]))
        assert first[q] == np.flatnonzero(pids[12:][order][keep] == pids[q])[0] + 1

    reranked = ReIDEvaluator(12, metric="euclidean", rerank=True, rerank_params=(5, 2, 0.3))
    feed(reranked, features, pids, camids)
    assert reranked.evaluate()["mAP"] != pytest.approx(results["mAP"])


def _evaluator_worker(features, pids, camids, out_dir):
    from daaf.data.samplers import InferenceSampler
    from daaf.utils import comm

    evaluator = ReIDEvaluator(12, metric="cosine")
    indices = list(InferenceSampler(len(features)))
    feed(evaluator, features[indices], pids[indices], camids[indices], batch=4)
    results = evaluator.evaluate()
    torch.save(results, os.path.join(out_dir, f"rank{comm.get_rank()}.pt"))


@pytest.mark.usefixtures("cpu_processes")
def test_evaluator_in_two_gloo_processes_equals_single_process(tmp_path):
    from daaf.engine import launch

    features, pids, camids = evaluator_inputs(seed=1)
    single = ReIDEvaluator(12, metric="cosine")
    feed(single, features, pids, camids)
    expected = single.evaluate()
    launch(_evaluator_worker, 2, dist_url="auto", args=(features, pids, camids, str(tmp_path)))
    assert dict(torch.load(tmp_path / "rank0.pt", weights_only=False)) == pytest.approx(dict(expected))
    assert torch.load(tmp_path / "rank1.pt", weights_only=False) == {}


def test_inference_progress_bar_ends_its_line_before_the_log(capsys):
    from daaf.data import collate_reid_batch
    from daaf.evaluation import DatasetEvaluator, inference_on_dataset

    class Counting(DatasetEvaluator):
        def reset(self):
            self.seen = 0

        def process(self, batch, outputs):
            self.seen += len(outputs)

        def evaluate(self):
            return {"seen": self.seen}

    class Embed(torch.nn.Module):
        def forward(self, images):
            return images.float().flatten(1)

    crop = {"image": torch.zeros(3, 8, 4, dtype=torch.uint8), "pid": 0, "camid": 0, "file_name": "x.jpg"}
    loader = torch.utils.data.DataLoader([crop] * 6, batch_size=2, collate_fn=collate_reid_batch)
    assert inference_on_dataset(Embed(), loader, Counting()) == {"seen": 6}
    err = capsys.readouterr().err
    assert "inference: 100%" in err and err.endswith("\n")  # the next output starts on a new line


def test_per_run_cmc_plot_names_the_model_and_the_dataset(tmp_path):
    from daaf.evaluation import describe_model
    from daaf.modeling import build_model

    from conftest import cpu_cfg

    cfg = cpu_cfg(MODEL__HEADS__NAME="TriNetHead", MODEL__DAAF__BRANCHES="['HAB', 'PAB']", MODEL__HEADS__NUM_CLASSES=4)
    name = describe_model(build_model(cfg), str(tmp_path / "daaf_trinet_R18"))
    evaluator = ReIDEvaluator(cfg, 12, dataset_name="SyntheticPersons", output_dir=str(tmp_path), model_name=name)
    assert evaluator.curve_label() == "daaf_trinet_R18 (TriNetHead, ResNet-18 + HAB + PAB) on SyntheticPersons"


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_re_ranking_pair_distances_kept_from_the_neighbour_search_equal_computed_ones(metric):
    from daaf.evaluation.distance import compute_distance
    from daaf.evaluation.rerank import _FeatureSource, _nearest_neighbours, _pair_squared_distances

    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(30, 5)).astype(np.float32)
    source = _FeatureSource(qf, gf, metric, torch.device("cpu"))
    ranks, nearest_sq, row_max, original = _nearest_neighbours(source, 6, 12)
    everything = np.concatenate([qf, gf])
    dense_sq = compute_distance(everything, everything, metric) ** 2
    np.testing.assert_allclose(nearest_sq, np.take_along_axis(dense_sq, ranks, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(original, dense_sq[:7, 7:] / dense_sq[:7].max(1, keepdims=True), rtol=1e-5, atol=1e-6)
    rows, cols = rng.integers(0, 37, 200), rng.integers(0, 37, 200)
    kept = _pair_squared_distances(source, rows, cols, ranks, nearest_sq)
    computed = _pair_squared_distances(source, rows, cols, ranks[:, :1], nearest_sq[:, :1])  # only the items themselves kept
    np.testing.assert_allclose(kept, dense_sq[rows, cols], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(computed, dense_sq[rows, cols], rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("rerank", [False, True])
def test_evaluator_on_gpu_gives_the_cpu_numbers(rerank, tmp_path):
    features, pids, camids = evaluator_inputs()
    results, saved = {}, {}
    for device in ("cpu", "cuda"):
        evaluator = ReIDEvaluator(12, metric="euclidean", rerank=rerank, device=device, output_dir=str(tmp_path / device), save_ranks=True)
        feed(evaluator, features, pids, camids)
        results[device] = evaluator.evaluate()
        saved[device] = np.load(tmp_path / device / "ranks.npz")
    for name, value in results["cpu"].items():
        assert results["cuda"][name] == pytest.approx(value, abs=1e-3), name
    np.testing.assert_array_equal(saved["cuda"]["indices"], saved["cpu"]["indices"])
    np.testing.assert_allclose(saved["cuda"]["query_ap"], saved["cpu"]["query_ap"], atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_rank_metrics_of_cuda_tensors_equal_the_cpu_path():
    problem = random_problem(0, ties=True)
    acc = RankAccumulator(50)
    acc.add(torch.from_numpy(problem[0]).cuda(), *problem[1:])
    cmc, mAP, mINP = acc.result()
    ref_cmc, ref_mAP, ref_mINP = evaluate_rank(*problem)
    np.testing.assert_allclose(cmc, ref_cmc)
    assert mAP == pytest.approx(ref_mAP, abs=1e-9) and mINP == pytest.approx(ref_mINP, abs=1e-9)


def test_compiled_kernels_are_cached_in_the_projects_cache_folder_not_the_source_tree():
    numba = pytest.importorskip("numba")
    from daaf.evaluation import kernels
    from daaf.utils.file_io import cache_dir

    assert numba.config.CACHE_DIR == os.path.join(cache_dir(), "numba")
    assert not numba.config.CACHE_DIR.startswith(os.path.dirname(kernels.__file__))
