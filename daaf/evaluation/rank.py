"""CMC, mAP and mINP under the Market-1501 protocol, vectorised and chunked over queries.

Protocol (same as torchreid / fast-reid): for each query, gallery items with the same pid AND
the same camera are removed; the rest are ranked by distance (ties broken by gallery index, as
a stable sort would); queries without any remaining true match are skipped. With numba installed,
a compiled kernel (``kernels.query_metrics``) computes each query's metrics in one pass over its
row; the NumPy paths below are the fallback (the same numbers). Distances given as a tensor on an
accelerator are ranked there (:func:`query_metrics_on_device`: every row sorted, which a GPU does
in milliseconds), and only the per-query results come back.
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

__all__ = ["evaluate_rank", "RankAccumulator", "match_ranks", "query_metrics_on_device"]

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


def _match_ranks_by_sorting(dist, q_pids, g_pids, q_camids, g_camids):
    """Per query, the sorted ranks of its true matches, from every row sorted (any model)."""
    matches = q_pids[:, None] == g_pids[None, :]
    valid = ~(matches & (q_camids[:, None] == g_camids[None, :]))
    good = matches & valid
    sorted_valid = _sort_rows_in_place(np.where(valid, dist, np.inf))
    return [match_ranks(dist[i], sorted_valid[i], valid[i], np.flatnonzero(good[i])) for i in range(len(dist))]


# Above this fraction of the matrix, sorting whole rows is cheaper than gathering the candidates.
_MAX_CANDIDATE_FRACTION = 0.05


def _match_ranks_of_candidates(dist, q_pids, g_pids, q_camids, g_camids):
    """Per query, the sorted ranks of its true matches, computed only from the valid items no
    farther than its farthest true match (the only ones that can come before a match); None when
    they are too many (a weak model) or include an infinite distance, for the sorting path.

    Same-pid pairs come from the gallery grouped by pid, so no (Q, G) pid comparison is made.
    Ties are ordered by gallery index, as a stable sort does.
    """
    num_q = len(dist)
    by_pid = np.argsort(g_pids, kind="stable")
    first = np.searchsorted(g_pids[by_pid], q_pids, "left")
    count = np.searchsorted(g_pids[by_pid], q_pids, "right") - first
    pair_q = np.repeat(np.arange(num_q), count)
    pair_g = by_pid[np.repeat(first, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)]
    junk = g_camids[pair_g] == q_camids[pair_q]
    farthest = np.full(num_q, -np.inf, dtype=dist.dtype)
    np.maximum.at(farthest, pair_q[~junk], dist[pair_q[~junk], pair_g[~junk]])
    if np.isinf(farthest).any() and not np.isneginf(farthest[np.isinf(farthest)]).all():
        return None  # a true match at +inf distance: ties with removed items, for the exact path
    if np.mean(dist[:, ::16] <= farthest[:, None]) > 2 * _MAX_CANDIDATE_FRACTION:  # a 1/16 sample says: too many
        return None
    candidates = dist <= farthest[:, None]
    candidates[pair_q[junk], pair_g[junk]] = False
    if np.count_nonzero(candidates) > _MAX_CANDIDATE_FRACTION * dist.size:
        return None
    flat = np.flatnonzero(candidates)
    rows, cols = np.divmod(flat, dist.shape[1])
    values = dist.reshape(-1)[flat].astype(np.float64)
    if len(values):
        # rows ascending, then distance, then gallery index: one float key and a stable sort
        # (flat order is row-major); where the key cannot separate two distances, the check
        # below sends the chunk to the sorting path
        low = values.min()
        order = np.argsort(rows * (values.max() - low + 1.0) + (values - low), kind="stable")
        rows, cols, values = rows[order], cols[order], values[order]
        same_row = rows[1:] == rows[:-1]
        ordered = (values[1:] > values[:-1]) | ((values[1:] == values[:-1]) & (cols[1:] > cols[:-1]))
        if not (ordered | ~same_row).all():
            return None
    positions = np.arange(len(rows)) - np.searchsorted(rows, np.arange(num_q))[rows]
    is_match = g_pids[cols] == q_pids[rows]
    match_rows, match_positions = rows[is_match], positions[is_match]
    bounds = np.searchsorted(match_rows, np.arange(num_q + 1))
    return [match_positions[bounds[i] : bounds[i + 1]] for i in range(num_q)]


def query_metrics_on_device(dist: torch.Tensor, q_pids, g_pids, q_camids, g_camids):
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

    def add(self, dist: np.ndarray, q_pids, g_pids, q_camids, g_camids) -> None:
        """Rank one chunk: ``dist`` (Q, G) for Q queries against the whole gallery (an array, or a
        tensor: one on an accelerator is ranked there)."""
        if isinstance(dist, torch.Tensor):
            if dist.device.type != "cpu":
                self._add_metrics(*query_metrics_on_device(dist, q_pids, g_pids, q_camids, g_camids))
                return
            dist = dist.numpy()
        dist = np.asarray(dist)
        if dist.dtype not in (np.float32, np.float64):
            dist = dist.astype(np.float32)
        if np.isnan(dist).any():
            raise ValueError("distance matrix contains NaN")
        q_pids, q_camids = np.asarray(q_pids), np.asarray(q_camids)
        g_pids, g_camids = np.asarray(g_pids), np.asarray(g_camids)
        if kernels.available():
            self._add_metrics(*kernels.query_metrics(dist, q_pids, g_pids, q_camids, g_camids))
            return
        ranks = _match_ranks_of_candidates(dist, q_pids, g_pids, q_camids, g_camids)
        if ranks is None:
            ranks = _match_ranks_by_sorting(dist, q_pids, g_pids, q_camids, g_camids)
        for query_ranks in ranks:
            self._add_query(query_ranks)

    def _add_metrics(self, first_rank: np.ndarray, ap: np.ndarray, inp: np.ndarray) -> None:
        """Per-query results of the compiled kernel: 0-based first-match ranks (-1: no true
        match), AP and INP (NaN without a true match)."""
        valid = first_rank >= 0
        self.num_skipped += int((~valid).sum())
        self.num_valid += int(valid.sum())
        self.query_ap.extend(ap.tolist())
        self.query_first_match.extend((first_rank + 1).tolist())  # 0 without a true match
        hits = first_rank[valid & (first_rank < self.max_rank)]
        self.first_match_hist += np.bincount(hits, minlength=self.max_rank)[: self.max_rank]
        self.ap_sum += float(ap[valid].sum())
        self.inp_sum += float(inp[valid].sum())

    def _add_query(self, ranks: np.ndarray) -> None:
        """One query's sorted 0-based positions of its true matches (empty: no true match)."""
        if len(ranks) == 0:
            self.num_skipped += 1
            self.query_ap.append(float("nan"))
            self.query_first_match.append(0)
            return
        self.query_first_match.append(int(ranks[0]) + 1)
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
