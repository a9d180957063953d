"""The paired statistics on made-up per-query results whose answer is known."""

import numpy as np
import pytest

from daaf.evaluation.comparison import compare_per_query, paired_bootstrap_interval, paired_differences, sign_flip_p_value
from daaf.utils.errors import UserError


def per_query(ap, first_match=None, files=None):
    ap = np.asarray(ap, dtype=np.float32)
    q = len(ap)
    first = np.where(np.isnan(ap), 0, 1 if first_match is None else first_match).astype(np.int64)
    return {
        "query_files": np.array(files or [f"q{i}.jpg" for i in range(q)]),
        "query_pids": np.arange(q),
        "query_camids": np.zeros(q, np.int64),
        "query_ap": ap,
        "query_inp": ap,
        "query_first_match": first,
    }


def noisy_differences(rng, seeds=3, queries=100, shift=0.0):
    """A query effect (which persons are hard) shared by the seeds, plus noise per seed and query."""
    return shift + rng.normal(0, 1.0, size=(1, queries)) + rng.normal(0, 0.5, size=(seeds, queries))


def test_a_constant_shift_gives_an_interval_above_zero_and_a_small_p():
    rng = np.random.default_rng(1)
    d = noisy_differences(rng, shift=0.5)
    low, high = paired_bootstrap_interval(d, 2000)
    assert 0 < low < 0.5 < high
    assert sign_flip_p_value(d, 2000) < 0.01
    assert paired_bootstrap_interval(-d, 2000) == pytest.approx((-high, -low), abs=0.05)  # symmetric in the sign


def test_pure_noise_covers_zero_in_about_95_percent_of_trials_and_p_is_uniform():
    rng = np.random.default_rng(2024)
    trials = 400
    covered, rejected = 0, 0
    for trial in range(trials):
        d = noisy_differences(rng)
        low, high = paired_bootstrap_interval(d, 400, seed=trial)
        covered += low <= 0 <= high
        rejected += sign_flip_p_value(d, 400, seed=trial) < 0.05
    assert 0.91 <= covered / trials <= 0.985
    assert 0.02 <= rejected / trials <= 0.09


def test_the_bootstrap_is_deterministic_for_a_seed_and_needs_finite_pairs():
    d = noisy_differences(np.random.default_rng(0))
    assert paired_bootstrap_interval(d, 500, seed=3) == paired_bootstrap_interval(d, 500, seed=3)
    with pytest.raises(ValueError, match="finite"):
        paired_bootstrap_interval(np.full((2, 3), np.nan))


def test_seeds_of_only_one_side_are_not_paired_and_queries_without_a_match_are_left_out():
    ours = {0: per_query([0.9, 0.5, np.nan]), 1: per_query([0.8, 0.6, np.nan]), 2: per_query([0.7, 0.7, np.nan])}
    base = {1: per_query([0.6, 0.5, np.nan]), 2: per_query([0.5, 0.6, np.nan]), 3: per_query([0.0, 0.0, np.nan])}
    d, seeds = paired_differences(ours, base, "mAP")
    assert seeds == (1, 2)
    np.testing.assert_allclose(d, [[20, 10], [20, 10]], atol=1e-4)
    (result,) = compare_per_query(ours, base, metrics=("mAP",), num_resamples=200)
    assert result.seeds == (1, 2) and result.num_queries == 2 and result.mean_difference == pytest.approx(15, abs=1e-4)
    assert result.low == pytest.approx(10, abs=1e-4) and result.high == pytest.approx(20, abs=1e-4)  # every pair gains 10 or 20
    assert result.verdict == "within the noise"  # but 2 queries are too few for the sign flips (p = 0.5)
    many = {s: per_query(np.full(40, 0.5) + 0.1 * (np.arange(40) % 2)) for s in (1, 2)}
    few = {s: per_query(np.full(40, 0.5)) for s in (1, 2)}
    (gain,) = compare_per_query(many, few, metrics=("mAP",), num_resamples=500)
    assert gain.verdict == "better" and gain.p_value < 0.005  # 20 queries gain, none loses: 1 flip in 2^20 as extreme
    (loss,) = compare_per_query(few, many, metrics=("mAP",), num_resamples=500)
    assert loss.verdict == "worse" and loss.high < 0


def test_rank1_pairs_first_match_hits_and_different_test_splits_are_refused():
    ours = {0: per_query([0.5, 0.5], first_match=[1, 3])}
    base = {0: per_query([0.5, 0.5], first_match=[2, 1])}
    d, _ = paired_differences(ours, base, "Rank-1")
    np.testing.assert_array_equal(d, [[100, -100]])
    other = {0: per_query([0.5, 0.5], files=["a.jpg", "b.jpg"])}
    with pytest.raises(UserError, match="same test split"):
        paired_differences(other, base, "mAP")
    with pytest.raises(UserError, match="no seed is in both"):
        paired_differences({5: ours[0]}, base, "mAP")
