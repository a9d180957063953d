"""Choosing what a ranked-list picture shows, from the ranks.npz an evaluation writes
(TEST.SAVE_RANKS True): which queries (worst or best AP first, or given ones) and each query's
top gallery items under the protocol (same identity and same camera removed)."""

from typing import Dict, List, Sequence

import numpy as np

from daaf.utils.errors import UserError

from .per_query import load_npz_arrays

__all__ = ["load_ranks", "select_queries", "ranked_gallery", "ranked_list_figure"]

_KEYS = ("indices", "distances", "query_files", "gallery_files", "query_pids", "gallery_pids", "query_camids", "gallery_camids", "query_ap")


def load_ranks(path: str) -> Dict[str, np.ndarray]:
    """The arrays of a ranks.npz; UserError naming the file when it is missing or incomplete."""
    data = load_npz_arrays(
        path,
        _KEYS,
        kind="a ranks.npz file",
        missing_hint="ranks file not found: {path} (write one with --eval-only TEST.SAVE_RANKS True)",
        remedy="re-run the evaluation with TEST.SAVE_RANKS True",
    )
    num_query, num_gallery = len(data["query_files"]), len(data["gallery_files"])
    expected = {"indices": (num_query, None), "distances": data["indices"].shape, "query_ap": (num_query,)}
    expected.update({k: (num_query,) for k in ("query_pids", "query_camids")})
    expected.update({k: (num_gallery,) for k in ("gallery_pids", "gallery_camids")})
    for key, shape in expected.items():
        got = data[key].shape
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
            want = "x".join("K" if s is None else str(s) for s in shape)
            raise UserError(f"{path}: {key} has shape {got}, expected ({want}) for {num_query} queries and {num_gallery} gallery images")
    if data["indices"].size and not (0 <= data["indices"].min() and data["indices"].max() < num_gallery):
        raise UserError(f"{path}: indices point outside the {num_gallery} gallery images")
    return data


def select_queries(query_ap: np.ndarray, order: str, num: int, given: Sequence[int] = ()) -> List[int]:
    """Query indices: ``order`` "worst" (lowest AP first), "best" (highest first) or "given"
    (``given`` as they are). Queries without a true match (AP NaN) are never chosen by AP; ties
    keep the query order."""
    if order == "given":
        bad = [q for q in given if not 0 <= q < len(query_ap)]
        if not given or bad:
            raise UserError(f"--queries: give query indices in [0, {len(query_ap) - 1}]" + (f"; got {bad}" if bad else ""))
        return list(given)
    if order not in ("worst", "best"):
        raise UserError(f"--order: expected worst, best or given, got '{order}'")
    valid = np.flatnonzero(~np.isnan(query_ap))
    keys = query_ap[valid] if order == "worst" else -query_ap[valid]
    return [int(q) for q in valid[np.argsort(keys, kind="stable")][:num]]


def ranked_gallery(ranks: Dict[str, np.ndarray], query: int, top_k: int):
    """(gallery indices, distances, is-same-identity) of the ``top_k`` best gallery items of
    ``query``, best first, without the items of its identity seen by its own camera."""
    idx, dist = ranks["indices"][query], ranks["distances"][query]
    pid, cam = ranks["query_pids"][query], ranks["query_camids"][query]
    keep = ~((ranks["gallery_pids"][idx] == pid) & (ranks["gallery_camids"][idx] == cam))
    idx, dist = idx[keep][:top_k], dist[keep][:top_k]
    return idx, dist, ranks["gallery_pids"][idx] == pid


def ranked_list_figure(ranks: Dict[str, np.ndarray], queries: Sequence[int], top_k: int) -> np.ndarray:
    """An RGB grid with one row per query of ``queries``: the query (labelled with its index, AP
    and the rank of its first true match, which may lie beyond the top k) and its ``top_k`` gallery images (:func:`ranked_gallery`), bordered by correctness."""
    from daaf.data import read_image
    from daaf.utils.visualization import image_grid, ranked_list_row

    rows = []
    for q in queries:
        gallery, distances, correct = ranked_gallery(ranks, q, top_k)
        images = [read_image(str(ranks["gallery_files"][g])) for g in gallery]
        label = f"q{q} AP {ranks['query_ap'][q] * 100:.1f}%"
        if "query_first_match" in ranks:  # ranks.npz files written before it lack it
            label += f", 1st match #{int(ranks['query_first_match'][q])}"
        rows.append(ranked_list_row(read_image(str(ranks["query_files"][q])), images, distances, correct, label))
    return image_grid(rows)
