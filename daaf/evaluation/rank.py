"""CMC, mAP and mINP under the Market-1501 protocol, chunked over queries.

Protocol (same as torchreid / fast-reid): for each query, gallery items with the same pid AND
the same camera are removed; the rest are ranked by distance (ties broken by gallery index, as
a stable sort would); queries without any remaining true match are skipped.

Each chunk of queries gives per-query results (rank of the first true match, AP, INP) through one
implementation per backend (``backend.py``): the compiled kernel ``kernels.query_metrics`` (numba:
one pass over each row), :func:`query_metrics_numpy` (rows sorted, true matches found by binary
search) or :func:`query_metrics_torch` (rows sorted with torch where the distances lie: on a GPU
only the per-query results come back).
"""

import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch

from . import kernels
from .backend import evaluation_backend

__all__ = ["evaluate_rank", "RankAccumulator", "match_ranks", "query_metrics_numpy", "query_metrics_torch"]

logger = logging.getLogger(__name__)


def match_ranks(dist_row: np.ndarray, sorted_valid: np.ndarray, valid_row: np.ndarray, match_idx: np.ndarray) -> np.ndarray:
    """0-based positions of the true matches ``match_idx`` in the stable ranking of the valid
    gallery items of one query.

    Args:
        dist_row: (G,) distances of the query to the gallery.
        sorted_valid: (G,) the same distances sorted ascending, with invalid items set to +inf.
        valid_row: (G,) bool, items that take part in the ranking.
        match_idx: (M,) gallery indices of the valid true matches.
    Returns: (M,) sorted positions.
    """
    d = dist_row[match_idx]
    left = np.searchsorted(sorted_valid, d, side="left")
    right = np.searchsorted(sorted_valid, d, side="right")
    tied = np.nonzero((right - left > 1) | np.isinf(d))[0]
    if len(tied):
        left = left.copy()
        for t in tied:  # rare: equal distances; count valid equals with a smaller gallery index
            j = match_idx[t]
            before = valid_row[:j] & (dist_row[:j] == d[t])
            if np.isinf(d[t]):  # invalid items are +inf too: searchsorted cannot separate them
                left[t] = np.count_nonzero(valid_row & (dist_row < d[t]))
            left[t] += np.count_nonzero(before)
    return np.sort(left)


@functools.lru_cache(maxsize=1)
def _sort_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="daaf-rank-sort")


def _sort_rows_in_place(matrix: np.ndarray) -> np.ndarray:
    """Sort each row of a 2-D array in place, blocks of rows in parallel threads (NumPy's sort
    releases the GIL, and sorting is most of the cost of ranking a large gallery)."""
    workers = _sort_pool()._max_workers
    if workers == 1 or len(matrix) < 2 * workers:
        matrix.sort(axis=1)
        return matrix
    bounds = np.linspace(0, len(matrix), workers + 1).astype(int)
    list(_sort_pool().map(lambda ab: matrix[ab[0] : ab[1]].sort(axis=1), zip(bounds[:-1], bounds[1:])))
    return matrix


def query_metrics_numpy(dist: np.ndarray, q_pids, g_pids, q_camids, g_camids):
    """The per-query results of ``kernels.query_metrics`` with NumPy: (first-match ranks (Q,) int64,
    AP (Q,), INP (Q,)), 0-based ranks, -1 and NaN for a query without a true match.

    Each row is sorted with the removed items set to +inf (rows in parallel threads), and each true
    match is placed in it by binary search (:func:`match_ranks`)."""
    matches = q_pids[:, None] == g_pids[None, :]
    valid = ~(matches & (q_camids[:, None] == g_camids[None, :]))
    good = matches & valid
    sorted_valid = _sort_rows_in_place(np.where(valid, dist, np.inf))
    num_q = len(dist)
    first, ap, inp = np.full(num_q, -1, np.int64), np.full(num_q, np.nan), np.full(num_q, np.nan)
    for i in range(num_q):
        ranks = match_ranks(dist[i], sorted_valid[i], valid[i], np.flatnonzero(good[i]))
        if len(ranks):
            positions = ranks + 1.0
            first[i] = ranks[0]
            ap[i] = np.mean(np.arange(1, len(ranks) + 1) / positions)
            inp[i] = len(ranks) / positions[-1]
    return first, ap, inp


def query_metrics_torch(dist: torch.Tensor, q_pids, g_pids, q_camids, g_camids):
    """The per-query results of ``kernels.query_metrics`` computed with torch where ``dist`` lies
    (any device): (first-match ranks (Q,) int64, AP (Q,), INP (Q,)) as NumPy arrays, 0-based ranks,
    -1 and NaN for a query without a true match.

    Each row is sorted stably with the removed items set to +inf; an item's rank is the number of
    valid items before it in that order, so removed items never count, even where a valid item's
    distance is +inf too. Memory: a few (Q, G) arrays; the caller chunks the queries.
    """
    device = dist.device
    as_tensor = lambda x: torch.as_tensor(np.asarray(x, dtype=np.int64), device=device)  # noqa: E731
    q_pids, g_pids, q_camids, g_camids = map(as_tensor, (q_pids, g_pids, q_camids, g_camids))
    if torch.isnan(dist).any():
        raise ValueError("distance matrix contains NaN")
    same_pid = q_pids[:, None] == g_pids[None, :]
    valid = ~(same_pid & (q_camids[:, None] == g_camids[None, :]))
    order = torch.sort(dist.masked_fill(~valid, float("inf")), dim=1, stable=True).indices
    valid_sorted = torch.gather(valid, 1, order)
    match_sorted = torch.gather(same_pid & valid, 1, order)
    del order, valid, same_pid
    rank = torch.cumsum(valid_sorted, dim=1) - 1  # 0-based rank among the valid items
    hits = torch.cumsum(match_sorted, dim=1)  # true matches up to and including each position
    num_matches = hits[:, -1]
    precision = torch.where(match_sorted, hits.double() / (rank + 1).double(), torch.zeros((), dtype=torch.float64, device=device))
    first = torch.where(match_sorted, rank, torch.full_like(rank, torch.iinfo(torch.int64).max)).min(dim=1).values
    last = torch.where(match_sorted, rank, torch.full_like(rank, -1)).max(dim=1).values
    has_match = num_matches > 0
    count = num_matches.double()
    ap = torch.where(has_match, precision.sum(1) / count.clamp(min=1), torch.full_like(count, float("nan")))
    inp = torch.where(has_match, count / (last + 1).double().clamp(min=1), torch.full_like(count, float("nan")))
    first = torch.where(has_match, first, torch.full_like(first, -1))
    return first.cpu().numpy(), ap.cpu().numpy(), inp.cpu().numpy()


@dataclass
class RankAccumulator:
    """Accumulates per-query results over chunks of queries; ``result()`` gives (cmc, mAP, mINP)."""

    max_rank: int = 50

    def __post_init__(self):
        self.first_match_hist = np.zeros(self.max_rank, dtype=np.int64)
        self.ap_sum = 0.0
        self.inp_sum = 0.0
        self.num_valid = 0
        self.num_skipped = 0
        self.query_ap = []  # per query in the order added; NaN for a query without a true match
        self.query_first_match = []  # per query: 1-based rank of its first true match; 0 without one
        self.query_inp = []  # per query; NaN without a true match

    def add(self, dist, q_pids, g_pids, q_camids, g_camids) -> None:
        """Rank one chunk: ``dist`` (Q, G) for Q queries against the whole gallery (an array, or a
        tensor: one on an accelerator is ranked there), through the backend for its device."""
        device = dist.device if isinstance(dist, torch.Tensor) else "cpu"
        backend = evaluation_backend(device)
        q_pids, q_camids = np.asarray(q_pids), np.asarray(q_camids)
        g_pids, g_camids = np.asarray(g_pids), np.asarray(g_camids)
        if backend == "torch":
            self._add_metrics(*query_metrics_torch(torch.as_tensor(dist), q_pids, g_pids, q_camids, g_camids))
            return
        dist = np.asarray(dist.numpy() if isinstance(dist, torch.Tensor) else dist)
        if dist.dtype not in (np.float32, np.float64):
            dist = dist.astype(np.float32)
        if np.isnan(dist).any():
            raise ValueError("distance matrix contains NaN")
        metrics = kernels.query_metrics if backend == "numba" else query_metrics_numpy
        self._add_metrics(*metrics(dist, q_pids, g_pids, q_camids, g_camids))

    def _add_metrics(self, first_rank: np.ndarray, ap: np.ndarray, inp: np.ndarray) -> None:
        """Per-query results: 0-based first-match ranks (-1: no true match), AP and INP (NaN
        without a true match)."""
        valid = first_rank >= 0
        self.num_skipped += int((~valid).sum())
        self.num_valid += int(valid.sum())
        self.query_ap.extend(ap.tolist())
        self.query_first_match.extend((first_rank + 1).tolist())  # 0 without a true match
        self.query_inp.extend(inp.tolist())
        hits = first_rank[valid & (first_rank < self.max_rank)]
        self.first_match_hist += np.bincount(hits, minlength=self.max_rank)[: self.max_rank]
        self.ap_sum += float(ap[valid].sum())
        self.inp_sum += float(inp[valid].sum())

    def result(self) -> Tuple[np.ndarray, float, float]:
        if self.num_valid == 0:
            raise ValueError("no query has a true match in the gallery (after removing same-pid same-camera items)")
        if self.num_skipped:
            logger.info(f"{self.num_skipped} queries have no true match in the gallery and are skipped")
        cmc = np.cumsum(self.first_match_hist) / self.num_valid
        return cmc.astype(np.float32), self.ap_sum / self.num_valid, self.inp_sum / self.num_valid


def evaluate_rank(
    distmat: np.ndarray,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    chunk_size: int = 512,
) -> Tuple[np.ndarray, float, float]:
    """CMC / mAP / mINP of a (Q, G) distance matrix.

    Returns:
        cmc: (max_rank,) float array, cmc[k] = fraction of valid queries whose first true match
            is within the top k+1 (also correct when a filtered gallery is shorter than max_rank);
        mAP, mINP: floats in [0, 1] over the valid queries.
    """
    acc = RankAccumulator(max_rank)
    g_pids, g_camids = np.asarray(g_pids), np.asarray(g_camids)
    q_pids, q_camids = np.asarray(q_pids), np.asarray(q_camids)
    if distmat.shape != (len(q_pids), len(g_pids)):
        raise ValueError(f"distmat shape {distmat.shape} does not match {len(q_pids)} queries x {len(g_pids)} gallery items")
    for start in range(0, distmat.shape[0], chunk_size):
        sl = slice(start, start + chunk_size)
        acc.add(distmat[sl], q_pids[sl], g_pids, q_camids[sl], g_camids)
    return acc.result()
