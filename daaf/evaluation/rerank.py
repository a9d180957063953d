"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) in bounded memory.

Same numbers as the published algorithm (tests/reference_evaluation.py, re_ranking_reference):
distances are squared and each row divided by its maximum; k-reciprocal neighbour sets with
k1 are expanded by the k1/2 sets of their members when those overlap by more than 2/3; the
Gaussian-weighted set vectors V are averaged over the k2 nearest neighbours (query expansion);
the Jaccard distance 1 - sum(min) / (2 - sum(min)) is mixed with the original distance:
``final = (1 - lambda) * jaccard + lambda * original``.

Instead of several dense (q+g)^2 matrices this keeps only the k1+1 nearest neighbours of every
item (found chunk by chunk with torch.topk, on the GPU when asked), V as a sparse matrix, and
computes the Jaccard term for chunks of queries. One implementation per backend (``backend.py``):
"numba" runs the neighbour search, the set expansion and the Jaccard term as compiled kernels;
"numpy" finds neighbours with torch.topk on the CPU and expands the sets and sums the Jaccard
term with NumPy; "torch" (data on an accelerator) runs the neighbour search and the Jaccard term
on the device, while the set expansion, O(n k^2) small integer work, takes the NumPy path.
"""

import logging
from typing import Optional

import numpy as np
import torch
from scipy import sparse

from . import kernels
from .backend import evaluation_backend
from .distance import paired_distance, pairwise_distance, prepare_features, squared_norms

__all__ = ["re_ranking", "re_ranking_features"]

logger = logging.getLogger(__name__)


class _MatrixSource:
    """Rows of the (q+g) x (q+g) distance matrix [[qq, qg], [qg^T, gg]] without building it."""

    neighbours_kept = 1  # x k nearest distances kept from the neighbour search: any pair is a cheap look-up

    def __init__(self, q_g_dist, q_q_dist, g_g_dist, device):
        self.qg = np.asarray(q_g_dist, dtype=np.float32)
        self.qq = np.asarray(q_q_dist, dtype=np.float32)
        self.gg = np.asarray(g_g_dist, dtype=np.float32)
        self.num_query, num_gallery = self.qg.shape
        if self.qq.shape != (self.num_query, self.num_query) or self.gg.shape != (num_gallery, num_gallery):
            raise ValueError(f"shapes do not fit: q_g {self.qg.shape}, q_q {self.qq.shape}, g_g {self.gg.shape}")
        self.size = self.num_query + num_gallery
        self.device = device

    def rows(self, start: int, stop: int) -> torch.Tensor:
        q = self.num_query
        parts = []
        if start < q:
            a, b = start, min(stop, q)
            parts.append(np.concatenate([self.qq[a:b], self.qg[a:b]], axis=1))
        if stop > q:
            a, b = max(start, q) - q, stop - q
            parts.append(np.concatenate([self.qg[:, a:b].T, self.gg[a:b]], axis=1))
        block = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        return torch.from_numpy(np.ascontiguousarray(block)).to(self.device)

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        q = self.num_query
        out = np.empty(len(i), dtype=np.float32)
        for in_q_i, in_q_j in ((True, True), (True, False), (False, True), (False, False)):
            sel = ((i < q) == in_q_i) & ((j < q) == in_q_j)
            ii, jj = i[sel], j[sel]
            if in_q_i and in_q_j:
                out[sel] = self.qq[ii, jj]
            elif in_q_i:
                out[sel] = self.qg[ii, jj - q]
            elif in_q_j:
                out[sel] = self.qg[jj, ii - q]
            else:
                out[sel] = self.gg[ii - q, jj - q]
        return out


class _FeatureSource:
    """Distances computed on the fly from features (the metrics of ``daaf.evaluation.distance``),
    never all at once."""

    # neighbours of neighbours (the expansion) mostly lie among a row's 3k nearest: their distances
    # are kept from the one pass over the rows, and only the rest are computed again
    neighbours_kept = 3

    def __init__(self, query_features, gallery_features, metric: str, device):
        feats = prepare_features(torch.cat([torch.as_tensor(query_features), torch.as_tensor(gallery_features)]), metric)
        self.metric = metric
        self.features = feats.to(device)
        self.sq_norms = squared_norms(self.features, metric)
        self.num_query = len(query_features)
        self.size = len(feats)
        self.device = device

    def rows(self, start: int, stop: int) -> torch.Tensor:
        return pairwise_distance(self.features[start:stop], self.features, self.metric, self.sq_norms)

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        out = np.empty(len(i), dtype=np.float32)
        step = max(1, (1 << 23) // self.features.shape[1])  # gathered blocks of 32 MB at most
        for s in range(0, len(i), step):
            a = self.features[torch.as_tensor(i[s : s + step], device=self.device)]
            b = self.features[torch.as_tensor(j[s : s + step], device=self.device)]
            out[s : s + step] = paired_distance(a, b, self.metric).cpu().numpy()
        return out


def re_ranking(
    q_g_dist, q_q_dist, g_g_dist, k1: int = 20, k2: int = 6, lambda_value: float = 0.3, chunk_size: int = 1024, device: Optional[str] = None
) -> np.ndarray:
    """Re-ranked (Q, G) float32 distances from the query-gallery, query-query and gallery-gallery
    distance matrices. ``device``: where the nearest-neighbour search runs ("cpu", "cuda")."""
    source = _MatrixSource(q_g_dist, q_q_dist, g_g_dist, torch.device(device or "cpu"))
    return _k_reciprocal_rerank(source, k1, k2, lambda_value, chunk_size)


def re_ranking_features(
    query_features,
    gallery_features,
    metric: str = "euclidean",
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    chunk_size: int = 1024,
    device: Optional[str] = None,
) -> np.ndarray:
    """Re-ranking from (Q, D) and (G, D) features: no (q+g)^2 matrix is ever held in memory."""
    source = _FeatureSource(query_features, gallery_features, metric, torch.device(device or "cpu"))
    return _k_reciprocal_rerank(source, k1, k2, lambda_value, chunk_size)


def _nearest_neighbours(source, chunk_size: int, k_store: int):
    """One pass over the rows of the (q+g)^2 squared distances. Returns (N, k_store) indices of each
    row's k_store smallest (ascending) and (N, k_store) those squared distances, (N,) row maxima,
    and the (q, g) query-gallery block divided by the query rows' maxima (the "original distance"
    term of the final mix)."""
    n, q = source.size, source.num_query
    ranks = np.empty((n, k_store), dtype=np.int64)
    nearest_sq = np.empty((n, k_store), dtype=np.float32)
    row_max = np.empty(n, dtype=np.float32)
    original = np.empty((q, n - q), dtype=np.float32)
    compiled = evaluation_backend(source.device) == "numba"
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        sq = source.rows(start, stop).pow_(2)  # rows() hands over a fresh block
        if compiled:
            ranks[start:stop], nearest_sq[start:stop], row_max[start:stop] = kernels.nearest_neighbours(sq.numpy(), k_store)
            block_max = torch.from_numpy(row_max[start:stop])
        else:
            block_max = sq.max(dim=1).values
            row_max[start:stop] = block_max.cpu().numpy()
            top = torch.topk(sq, k_store, dim=1, largest=False, sorted=True)
            ranks[start:stop] = top.indices.cpu().numpy()
            nearest_sq[start:stop] = top.values.cpu().numpy()
        if start < q:
            last = min(stop, q) - start
            original[start : start + last] = (sq[:last, q:] / block_max[:last, None]).cpu().numpy()
    return ranks, nearest_sq, row_max, original


def _pair_squared_distances(
    source, rows: np.ndarray, cols: np.ndarray, ranks: np.ndarray, nearest_sq: np.ndarray, chunk: int = 1 << 16
) -> np.ndarray:
    """Squared distances of the (rows[p], cols[p]) pairs: those among a row's stored nearest
    neighbours from the neighbour search, the (few) others from ``source.pairs``."""
    out = np.empty(len(rows), dtype=np.float32)
    missing = np.zeros(len(rows), dtype=bool)
    for s in range(0, len(rows), chunk):
        r, c = rows[s : s + chunk], cols[s : s + chunk]
        match = ranks[r] == c[:, None]
        found = match.any(1)
        out[s : s + chunk] = nearest_sq[r, match.argmax(1)]
        missing[s : s + chunk] = ~found
    if missing.any():
        out[missing] = source.pairs(rows[missing], cols[missing]) ** 2
    return out


def _reciprocal_mask(ranks: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """mask[i, t] = True when i is among the neighbours of its t-th neighbour ranks[i, t]."""
    n = len(ranks)
    mask = np.empty(ranks.shape, dtype=bool)
    for s in range(0, n, chunk):
        r = ranks[s : s + chunk]
        mask[s : s + chunk] = (ranks[r] == np.arange(s, s + len(r))[:, None, None]).any(-1)
    return mask


def _expansion_pairs(ranks, recip, ranks_half, recip_half, chunk: int = 2048):
    """(rows, cols) of every item's expanded k-reciprocal set (unique pairs, sorted)."""
    n = len(ranks)
    keys = []
    for s in range(0, n, chunk):
        members, m_mask = ranks[s : s + chunk], recip[s : s + chunk]
        cand_sets, c_mask = ranks_half[members], recip_half[members]  # (c, K, Kh)
        in_set = ((cand_sets[..., None] == members[:, None, None, :]) & m_mask[:, None, None, :]).any(-1)
        overlap = (c_mask & in_set).sum(-1)
        take = m_mask & (overlap > 2.0 / 3.0 * c_mask.sum(-1))
        rows = np.arange(s, s + len(members))
        keys.append(rows[:, None].repeat(members.shape[1], 1)[m_mask] * n + members[m_mask])
        extra = take[..., None] & c_mask
        keys.append(np.broadcast_to(rows[:, None, None], cand_sets.shape)[extra] * n + cand_sets[extra])
    keys = np.unique(np.concatenate(keys))
    return keys // n, keys % n


def _k_reciprocal_rerank(source, k1: int, k2: int, lambda_value: float, chunk_size: int) -> np.ndarray:
    n, q = source.size, source.num_query
    if not 1 <= k2 <= k1 + 1:
        raise ValueError(f"re-ranking needs 1 <= k2 <= k1 + 1, got k1={k1}, k2={k2}")
    k = min(k1 + 1, n)
    k_store = min(source.neighbours_kept * k, n)
    ranks_stored, nearest_sq, row_max, original = _nearest_neighbours(source, chunk_size, k_store)
    ranks = np.ascontiguousarray(ranks_stored[:, :k])
    k_half = min(int(np.around(k1 / 2.0)) + 1, k)
    recip = _reciprocal_mask(ranks)
    ranks_half = np.ascontiguousarray(ranks[:, :k_half])
    recip_half = _reciprocal_mask(ranks_half)
    backend = evaluation_backend(source.device)
    expand = kernels.expansion_pairs if backend == "numba" else _expansion_pairs
    rows, cols = expand(ranks, recip, ranks_half, recip_half)

    # Gaussian kernel of the (squared, row-normalised) original distance, normalised per row.
    sq = _pair_squared_distances(source, rows, cols, ranks_stored, nearest_sq)
    weights = np.exp(-sq / row_max[rows]).astype(np.float32)
    weights /= np.bincount(rows, weights, minlength=n)[rows].astype(np.float32)
    v = sparse.csr_matrix((weights, (rows, cols)), shape=(n, n), dtype=np.float32)
    if k2 != 1:
        qe_rows = np.repeat(np.arange(n), k2)
        qe = sparse.csr_matrix((np.full(n * k2, 1.0 / k2, dtype=np.float32), (qe_rows, ranks[:, :k2].reshape(-1))), shape=(n, n))
        v = (qe @ v).tocsr()

    v_query = v[:q].tocsr()
    v_gallery = v[q:].tocsc()
    num_gallery = n - q
    final = np.empty((q, num_gallery), dtype=np.float32)
    if backend == "torch":
        _jaccard_distances(v_query, v_gallery, num_gallery, source.device, out=final)
    elif backend == "numba":
        kernels.jaccard_rows(v_query, v_gallery, num_gallery, out=final)
    else:
        lengths_per_col = np.diff(v_gallery.indptr)
        for start, stop in _chunks_by_cost(v_query, lengths_per_col, budget=8_000_000):
            final[start:stop] = _jaccard_block(v_query[start:stop], v_gallery, lengths_per_col, num_gallery)
    final *= 1 - lambda_value
    original *= lambda_value
    final += original
    return final


def _chunks_by_cost(v_query: sparse.csr_matrix, lengths_per_col: np.ndarray, budget: int):
    """(start, stop) ranges of query rows whose Jaccard work (entry pairs) stays near ``budget``."""
    coo = v_query.tocoo()
    row_cost = np.bincount(coo.row, lengths_per_col[coo.col], minlength=v_query.shape[0])
    bounds = np.searchsorted(np.cumsum(row_cost), np.arange(budget, row_cost.sum() + budget, budget), side="right")
    start = 0
    for stop in list(bounds) + [v_query.shape[0]]:
        stop = max(int(stop), start + 1)
        if start >= v_query.shape[0]:
            break
        yield start, min(stop, v_query.shape[0])
        start = stop


def _jaccard_distances(
    v_query: sparse.csr_matrix, v_gallery_csc: sparse.csc_matrix, num_gallery: int, device, out: np.ndarray, budget: int = 8_000_000
) -> np.ndarray:
    """The (q, G) Jaccard distances 1 - m / (2 - m), m[i, j] = sum_k min(V[i, k], V[j, k]), of the
    query rows of V (CSR) to the gallery rows (the gallery block as CSC: column k lists the gallery
    items holding k), computed with torch on ``device`` for blocks of query rows whose work (pairs
    of entries) stays near ``budget``; written into the float32 array ``out``.

    The accelerator's path. On the CPU :func:`_jaccard_block` does the same gathers with NumPy,
    5x faster than torch's CPU indexing (0.22 vs 1.08 s for 2,000 x 10,000 items)."""
    indptr = torch.as_tensor(v_gallery_csc.indptr.astype(np.int64), device=device)
    gallery_rows = torch.as_tensor(v_gallery_csc.indices.astype(np.int64), device=device)
    gallery_values = torch.as_tensor(v_gallery_csc.data.astype(np.float32), device=device)
    lengths_per_col = np.diff(v_gallery_csc.indptr)
    max_rows = max(1, budget // max(num_gallery, 1))  # and the (rows, G) sums stay near the budget too
    blocks = (
        (a, min(a + max_rows, stop))
        for start, stop in _chunks_by_cost(v_query, lengths_per_col, budget)
        for a in range(start, stop, max_rows)
    )
    for start, stop in blocks:
        coo = v_query[start:stop].tocoo()
        rows, cols = (torch.as_tensor(x.astype(np.int64), device=device) for x in (coo.row, coo.col))
        values = torch.as_tensor(coo.data.astype(np.float32), device=device)
        lengths = indptr[cols + 1] - indptr[cols]
        entry = torch.repeat_interleave(torch.arange(len(cols), device=device), lengths)  # the query entry of each pair
        offset_in_col = torch.arange(len(entry), device=device) - (torch.cumsum(lengths, 0) - lengths)[entry]
        positions = indptr[cols][entry] + offset_in_col
        shared = torch.minimum(values[entry], gallery_values[positions]).double()
        m = torch.zeros((stop - start) * num_gallery, dtype=torch.float64, device=device)
        m.index_add_(0, rows[entry] * num_gallery + gallery_rows[positions], shared)
        m = m.view(stop - start, num_gallery).float()
        out[start:stop] = (1.0 - m / (2.0 - m)).cpu().numpy()
    return out


def _jaccard_block(
    v_rows: sparse.csr_matrix, v_gallery_csc: sparse.csc_matrix, lengths_per_col: np.ndarray, num_gallery: int
) -> np.ndarray:
    """1 - m / (2 - m) with m[i, j] = sum_k min(V[i, k], V[j, k]) for a block of query rows."""
    coo = v_rows.tocoo()
    lengths = lengths_per_col[coo.col]
    total = int(lengths.sum())
    m = np.zeros(v_rows.shape[0] * num_gallery, dtype=np.float64)
    if total:
        offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
        positions = np.repeat(v_gallery_csc.indptr[coo.col], lengths) + (np.arange(total) - offsets)
        gallery_rows = v_gallery_csc.indices[positions]
        contrib = np.minimum(np.repeat(coo.data, lengths), v_gallery_csc.data[positions])
        m = np.bincount(np.repeat(coo.row, lengths) * num_gallery + gallery_rows, contrib, minlength=len(m))
    m = m.reshape(v_rows.shape[0], num_gallery).astype(np.float32)
    return 1.0 - m / (2.0 - m)
