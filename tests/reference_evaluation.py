"""The reference the evaluation code is measured against: direct, slow NumPy implementations of
the evaluation protocol and of k-reciprocal re-ranking, step by step as published.
``daaf.evaluation.rank`` and ``daaf.evaluation.rerank`` are tested (tests/evaluation) and
benchmarked (benchmarks/bench_evaluation.py) against them; they are also a readable statement of what is
computed. Not part of the library."""

import numpy as np

__all__ = ["evaluate_rank_reference", "re_ranking_reference"]


def evaluate_rank_reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50):
    """One query at a time: stable sort, drop same pid + same camera, CMC / AP / INP."""
    cmcs, aps, inps = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        hits = (g_pids[order] == q_pids[i])[keep].astype(np.int64)
        if not hits.any():
            continue
        positions = np.flatnonzero(hits)
        cumulative = hits.cumsum()
        inps.append(cumulative[positions[-1]] / (positions[-1] + 1.0))
        cmc = np.minimum(cumulative, 1)
        row = np.full(max_rank, cmc[-1], dtype=np.float64)
        row[: min(max_rank, len(cmc))] = cmc[:max_rank]
        cmcs.append(row)
        aps.append(np.sum(cumulative / (np.arange(len(hits)) + 1.0) * hits) / hits.sum())
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps))


def re_ranking_reference(q_g_dist, q_q_dist, g_g_dist, k1: int = 20, k2: int = 6, lambda_value: float = 0.3):
    """Zhong et al.'s algorithm with dense (q+g)^2 matrices and per-item Python loops."""
    q = q_g_dist.shape[0]
    full = np.concatenate([np.concatenate([q_q_dist, q_g_dist], axis=1), np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0)
    full = np.power(full, 2).astype(np.float32)
    original = np.transpose(full / np.max(full, axis=0))
    n = original.shape[0]
    initial_rank = np.argsort(original).astype(np.int32)
    V = np.zeros_like(original, dtype=np.float32)
    half = int(np.around(k1 / 2.0))
    for i in range(n):
        forward = initial_rank[i, : k1 + 1]
        backward = initial_rank[forward, : k1 + 1]
        reciprocal = forward[np.where(backward == i)[0]]
        expansion = reciprocal
        for candidate in reciprocal:
            c_forward = initial_rank[candidate, : half + 1]
            c_backward = initial_rank[c_forward, : half + 1]
            c_reciprocal = c_forward[np.where(c_backward == candidate)[0]]
            if len(np.intersect1d(c_reciprocal, reciprocal)) > 2.0 / 3 * len(c_reciprocal):
                expansion = np.append(expansion, c_reciprocal)
        expansion = np.unique(expansion)
        weight = np.exp(-original[i, expansion])
        V[i, expansion] = weight / np.sum(weight)
    original = original[:q]
    if k2 != 1:
        V = np.stack([np.mean(V[initial_rank[i, :k2], :], axis=0) for i in range(n)]).astype(np.float32)
    inverted = [np.where(V[:, j] != 0)[0] for j in range(n)]
    jaccard = np.zeros_like(original, dtype=np.float32)
    for i in range(q):
        overlap = np.zeros(n, dtype=np.float32)
        for k in np.where(V[i, :] != 0)[0]:
            rows = inverted[k]
            overlap[rows] += np.minimum(V[i, k], V[rows, k])
        jaccard[i] = 1 - overlap / (2.0 - overlap)
    final = jaccard * (1 - lambda_value) + original * lambda_value
    return final[:, q:]
