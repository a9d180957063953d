"""tools/compare_runs.py on made-up run folders: seeds paired by their config's SEED, the table and
the JSON it writes, and its one-line errors."""

import json

import numpy as np
import pytest

from daaf.evaluation import save_per_query
from daaf.utils.errors import UserError

from conftest import run_tool

NUM_QUERIES = 60


def make_run(folder, seed, ap, dataset="Toy"):
    """A run folder as train_net leaves it: config.yaml with its SEED and per-query results."""
    inference = folder / "inference" / dataset
    inference.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"SEED: {seed}\nOUTPUT_DIR: {folder}\n")
    ap = np.asarray(ap, dtype=np.float32)
    save_per_query(
        str(inference / "per_query.npz"),
        query_files=np.array([f"q{i}.jpg" for i in range(len(ap))]),
        query_pids=np.arange(len(ap)),
        query_camids=np.zeros(len(ap), np.int64),
        query_ap=ap,
        query_inp=ap,
        query_first_match=np.where(ap > 0.5, 1, 3),
    )


def test_seed_folders_are_paired_by_seed_and_a_clear_gain_is_called_better(tmp_path, capsys):
    rng = np.random.default_rng(0)
    hard = rng.uniform(0.2, 0.8, NUM_QUERIES)  # which queries are hard is shared by both models
    for seed in (0, 1, 2):
        make_run(tmp_path / "base" / f"run_{seed}", seed, hard)
    for seed in (1, 2, 3):  # named differently: the SEED of config.yaml pairs them
        make_run(tmp_path / "daaf" / f"try{seed}", seed, np.clip(hard + 0.1 + rng.normal(0, 0.02, NUM_QUERIES), 0, 1))
    out = tmp_path / "compare.json"
    run_tool("compare_runs", str(tmp_path / "base"), str(tmp_path / "daaf"), "--resamples", "500", "--output", str(out))
    printed = capsys.readouterr().out
    assert "seeds 0, 3 are in only one of the two; left out" in printed
    assert f"on Toy: {NUM_QUERIES} queries, 2 paired run(s)" in printed
    report = {r["metric"]: r for r in json.loads(out.read_text())}
    assert list(report) == ["mAP", "Rank-1", "mINP"] and report["mAP"]["seeds"] == [1, 2]
    assert report["mAP"]["mean_difference"] == pytest.approx(10, abs=1) and report["mAP"]["verdict"] == "better"
    assert report["mAP"]["base_mean"] == pytest.approx(hard.mean() * 100, rel=1e-5)
    assert f"| mAP | {hard.mean() * 100:.2f} |" in printed and "paired bootstrap over seeds and queries together (500 resamples" in printed


def test_two_single_runs_are_paired_as_given_and_noise_is_within_the_noise(tmp_path, capsys):
    rng = np.random.default_rng(1)
    make_run(tmp_path / "a", 0, rng.uniform(0, 1, NUM_QUERIES))
    make_run(tmp_path / "b", 7, rng.uniform(0, 1, NUM_QUERIES))  # another seed, one run each: paired as given
    run_tool("compare_runs", str(tmp_path / "a"), str(tmp_path / "b"), "--metrics", "mAP", "--resamples", "500")
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| mAP |"))
    assert row.endswith("| within the noise |")


def test_bad_folders_and_other_test_splits_get_one_line(tmp_path):
    make_run(tmp_path / "a", 0, np.full(NUM_QUERIES, 0.5))
    make_run(tmp_path / "b", 0, np.full(NUM_QUERIES, 0.5), dataset="Other")
    with pytest.raises(UserError, match=r"/missing: not a folder"):
        run_tool("compare_runs", str(tmp_path / "a"), str(tmp_path / "missing"))
    with pytest.raises(UserError, match=r"no test set evaluated in both"):
        run_tool("compare_runs", str(tmp_path / "a"), str(tmp_path / "b"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"/empty: holds no evaluated run"):
        run_tool("compare_runs", str(tmp_path / "a"), str(tmp_path / "empty"))
    make_run(tmp_path / "c", 0, np.full(NUM_QUERIES - 1, 0.5))
    with pytest.raises(UserError, match=r"same test split"):
        run_tool("compare_runs", str(tmp_path / "a"), str(tmp_path / "c"))
