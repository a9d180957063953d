"""CMC, mAP and mINP under the Market-1501 protocol, vectorised and chunked over queries.

Protocol (same as torchreid / fast-reid): for each query, gallery items with the same pid AND
the same camera are removed; the rest are ranked by distance (ties broken by gallery index, as
a stable sort would); queries without any remaining true match are skipped.
"""

import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Tuple

import numpy as np

__all__ = ["evaluate_rank", "evaluate_rank_chunks", "RankAccumulator", "match_ranks"]

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

    def add(self, dist: np.ndarray, q_pids, g_pids, q_camids, g_camids) -> None:
        """Rank one chunk: ``dist`` (Q, G) for Q queries against the whole gallery."""
        dist = np.asarray(dist)
        if dist.dtype not in (np.float32, np.float64):
            dist = dist.astype(np.float32)
        if np.isnan(dist).any():
            raise ValueError("distance matrix contains NaN")
        q_pids, q_camids = np.asarray(q_pids), np.asarray(q_camids)
        matches = q_pids[:, None] == g_pids[None, :]
        junk = matches & (q_camids[:, None] == g_camids[None, :])
        valid = ~junk
        good = matches & valid
        sorted_valid = _sort_rows_in_place(np.where(valid, dist, np.inf))
        for i in range(dist.shape[0]):
            match_idx = np.flatnonzero(good[i])
            if len(match_idx) == 0:
                self.num_skipped += 1
                self.query_ap.append(float("nan"))
                continue
            ranks = match_ranks(dist[i], sorted_valid[i], valid[i], match_idx)
            if ranks[0] < self.max_rank:
                self.first_match_hist[ranks[0]] += 1
            positions = ranks + 1.0
            ap = float(np.mean(np.arange(1, len(ranks) + 1) / positions))
            self.ap_sum += ap
            self.query_ap.append(ap)
            self.inp_sum += len(ranks) / positions[-1]
            self.num_valid += 1

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


def evaluate_rank_chunks(chunks: Iterable[Tuple[np.ndarray, slice]], q_pids, g_pids, q_camids, g_camids, max_rank: int = 50):
    """Like :func:`evaluate_rank` for distance rows produced chunk by chunk: ``chunks`` yields
    ((Q_chunk, G) distances, slice of the queries they belong to)."""
    acc = RankAccumulator(max_rank)
    g_pids, g_camids = np.asarray(g_pids), np.asarray(g_camids)
    q_pids, q_camids = np.asarray(q_pids), np.asarray(q_camids)
    for dist, sl in chunks:
        acc.add(dist, q_pids[sl], g_pids, q_camids[sl], g_camids)
    return acc.result()
