"""Compiled (numba) kernels of the evaluation: the per-query rank metrics (``rank.py``) and the
three loops of k-reciprocal re-ranking (``rerank.py``: each row's k nearest neighbours, the
expanded k-reciprocal sets, the Jaccard term): the "numba" backend of ``backend.py``. numba is
optional (``pip install numba``); without it the NumPy paths of rank.py and rerank.py are used.

Compiled on first use (a few seconds) and cached on disk in the project's cache folder.
"""

import os

import numpy as np

from daaf.utils.file_io import cache_dir

__all__ = ["query_metrics", "nearest_neighbours", "expansion_pairs", "jaccard_rows"]

try:
    import numba
except ImportError:  # optional
    numba = None

if numba is not None and "NUMBA_CACHE_DIR" not in os.environ:
    # numba caches compiled kernels beside their source by default: into the installed package (or
    # a user's checkout); the project's cache folder keeps the source tree as it was installed
    numba.config.CACHE_DIR = os.path.join(cache_dir(), "numba")


if numba is not None:

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _query_metrics(dist, q_pids, q_camids, g_pids, g_camids, by_pid, first, count, first_rank, ap, inp):
        """Per query: the 0-based rank of its first true match, AP and INP under the protocol (the
        same pid seen by the same camera removed; ties ordered by gallery index), or -1 / NaN for a
        query without a true match. A gallery item is ranked before a match when its (distance,
        index) is smaller: counted with one pass over the row, each item placed among the matches
        (sorted by (distance, index)) from a table of where each distance bin starts."""
        for i in numba.prange(dist.shape[0]):
            row = dist[i]
            qp, qc = q_pids[i], q_camids[i]
            matches = np.empty(count[i], np.int64)
            m = 0
            for t in range(first[i], first[i] + count[i]):
                j = by_pid[t]
                if g_camids[j] != qc:
                    matches[m] = j
                    m += 1
            if m == 0:
                first_rank[i], ap[i], inp[i] = -1, np.nan, np.nan
                continue
            keys = np.empty(m, np.float64)
            for t in range(m):
                keys[t] = row[matches[t]]
            order = np.argsort(keys, kind="mergesort")  # stable: equal distances keep index order
            match_d = keys[order]
            match_j = matches[order]
            before = np.zeros(m + 1, np.int64)  # before[c]: items ranked after c matches, before the others
            first_d, last_d = match_d[0], match_d[m - 1]
            # where to start looking among the matches for a distance: table[b] is the first match at
            # or beyond the start of bin b of [first_d, last_d], so only a few are stepped over
            bins = 4 * m
            span = last_d - first_d
            scale = bins / span if 0.0 < span < np.inf else 0.0  # 0: no table (one distance, or an infinite one)
            table = np.empty(bins + 1, np.int64)
            t = 0
            for b in range(bins + 1):
                while t < m and (match_d[t] - first_d) * scale < b:
                    t += 1
                table[b] = t
            for j in range(row.shape[0]):
                d = row[j]
                if d > last_d or g_pids[j] == qp:  # after every match, or a match / a removed item
                    continue
                pos = 0 if d <= first_d or scale == 0.0 else table[min(int((d - first_d) * scale), bins)]
                while pos < m and (match_d[pos] < d or (match_d[pos] == d and match_j[pos] < j)):
                    pos += 1  # the matches whose (distance, index) is smaller than the item's
                before[pos] += 1
            total, ap_sum, rank = 0, 0.0, 0
            for t in range(m):
                total += before[t]
                rank = t + total
                ap_sum += (t + 1.0) / (rank + 1.0)
            first_rank[i] = before[0]
            ap[i] = ap_sum / m
            inp[i] = m / (rank + 1.0)

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _nearest(block, k, indices, values, row_max):
        """Per row of ``block`` (b, n): its k smallest values, ascending (ties: smaller index
        first, as a stable sort orders them), their columns, and the row's maximum."""
        b, n = block.shape
        for r in numba.prange(b):
            row = block[r]
            top_v = np.empty(k, np.float32)
            top_i = np.empty(k, np.int64)
            filled = 0
            biggest = row[0]
            for j in range(n):
                x = row[j]
                if x > biggest:
                    biggest = x
                if filled == k and x >= top_v[k - 1]:
                    continue  # not smaller than the k-th (an equal value of a later index sorts after it)
                pos = filled if filled < k else k - 1
                while pos > 0 and top_v[pos - 1] > x:
                    if pos < k:
                        top_v[pos] = top_v[pos - 1]
                        top_i[pos] = top_i[pos - 1]
                    pos -= 1
                top_v[pos] = x
                top_i[pos] = j
                if filled < k:
                    filled += 1
            indices[r, :] = top_i
            values[r, :] = top_v
            row_max[r] = biggest

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _expansion(ranks, recip, ranks_half, recip_half, out, counts):
        """Per item i: its k-reciprocal set R(i), joined by the k/2-reciprocal set of each member
        whose set shares more than 2/3 of its items with R(i); sorted, without repeats, in out[i]."""
        n, k = ranks.shape
        kh = ranks_half.shape[1]
        for i in numba.prange(n):
            buffer = np.empty(k + k * kh, np.int64)
            used = 0
            for t in range(k):
                if recip[i, t]:
                    buffer[used] = ranks[i, t]
                    used += 1
            members = used
            for t in range(k):
                if not recip[i, t]:
                    continue
                c = ranks[i, t]
                size = 0
                overlap = 0
                for u in range(kh):
                    if recip_half[c, u]:
                        size += 1
                        candidate = ranks_half[c, u]
                        for m in range(members):
                            if buffer[m] == candidate:
                                overlap += 1
                                break
                if overlap > 2.0 / 3.0 * size:
                    for u in range(kh):
                        if recip_half[c, u]:
                            buffer[used] = ranks_half[c, u]
                            used += 1
            items = np.sort(buffer[:used])
            unique = 0
            for t in range(used):
                if t == 0 or items[t] != items[t - 1]:
                    out[i, unique] = items[t]
                    unique += 1
            counts[i] = unique

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _jaccard(q_indptr, q_indices, q_data, g_indptr, g_indices, g_data, num_gallery, out):
        """out[i, j] = 1 - m / (2 - m), m = sum_k min(V[i, k], V[j, k]), for query rows i (CSR) and
        gallery rows j (given as the gallery block's CSC columns)."""
        for i in numba.prange(len(q_indptr) - 1):
            m = np.zeros(num_gallery, np.float64)
            for p in range(q_indptr[i], q_indptr[i + 1]):
                col, value = q_indices[p], q_data[p]
                for s in range(g_indptr[col], g_indptr[col + 1]):
                    other = g_data[s]
                    m[g_indices[s]] += value if value < other else other
            for j in range(num_gallery):
                x = np.float32(m[j])
                out[i, j] = 1.0 - x / (2.0 - x)


def query_metrics(dist, q_pids, g_pids, q_camids, g_camids):
    """(first-match ranks (Q,) int64, AP (Q,), INP (Q,)) of a (Q, G) distance block: 0-based
    ranks; -1 and NaN for a query without a true match (see rank.py for the protocol)."""
    g_pids = np.ascontiguousarray(g_pids, dtype=np.int64)
    q_pids = np.ascontiguousarray(q_pids, dtype=np.int64)
    by_pid = np.argsort(g_pids, kind="stable")
    first = np.searchsorted(g_pids[by_pid], q_pids, "left")
    count = np.searchsorted(g_pids[by_pid], q_pids, "right") - first
    num_q = len(dist)
    first_rank, ap, inp = np.empty(num_q, np.int64), np.empty(num_q, np.float64), np.empty(num_q, np.float64)
    _query_metrics(
        np.ascontiguousarray(dist), q_pids, np.ascontiguousarray(q_camids, dtype=np.int64), g_pids,
        np.ascontiguousarray(g_camids, dtype=np.int64), by_pid, first, count, first_rank, ap, inp,
    )  # fmt: skip
    return first_rank, ap, inp


def nearest_neighbours(block: np.ndarray, k: int):
    """(indices (b, k) int64, values (b, k) float32, row maxima (b,)) of a (b, n) float32 block:
    each row's k smallest values in ascending order, ties ordered by column."""
    block = np.ascontiguousarray(block, dtype=np.float32)
    if not 1 <= k <= block.shape[1]:
        raise ValueError(f"k = {k}: expected 1 to {block.shape[1]} (the row length)")
    indices = np.empty((len(block), k), np.int64)
    values = np.empty((len(block), k), np.float32)
    row_max = np.empty(len(block), np.float32)
    _nearest(block, k, indices, values, row_max)
    return indices, values, row_max


def expansion_pairs(ranks, recip, ranks_half, recip_half):
    """(rows, cols) of every item's expanded k-reciprocal set, sorted by row then column (the
    pairs of the NumPy backend's set expansion)."""
    n, k = ranks.shape
    out = np.empty((n, k + k * ranks_half.shape[1]), np.int64)
    counts = np.empty(n, np.int64)
    _expansion(
        np.ascontiguousarray(ranks),
        np.ascontiguousarray(recip),
        np.ascontiguousarray(ranks_half),
        np.ascontiguousarray(recip_half),
        out,
        counts,
    )
    keep = np.arange(out.shape[1])[None, :] < counts[:, None]
    return np.repeat(np.arange(n), counts), out[keep]


def jaccard_rows(v_query, v_gallery_csc, num_gallery: int, out: np.ndarray = None) -> np.ndarray:
    """The (q, G) float32 Jaccard distances of the query rows of V (CSR) to the gallery rows of V
    (the gallery block as CSC: column k lists the gallery items holding k), into ``out`` if given."""
    if out is None:
        out = np.empty((v_query.shape[0], num_gallery), np.float32)
    _jaccard(
        v_query.indptr.astype(np.int64),
        v_query.indices.astype(np.int64),
        v_query.data.astype(np.float32),
        v_gallery_csc.indptr.astype(np.int64),
        v_gallery_csc.indices.astype(np.int64),
        v_gallery_csc.data.astype(np.float32),
        num_gallery,
        out,
    )
    return out
