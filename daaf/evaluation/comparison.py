"""Is one model's gain over another real? Paired statistics over seeds and queries, from the
per-query results every evaluation keeps (:mod:`daaf.evaluation.per_query`).

Two models evaluated on the same test split with the same seeds give, per metric, a (S, Q) array
of paired differences d[s, q] (model minus base, seed s, query q). Their mean is the difference of
the metric averaged over seeds. Both the seeds (initialisation, data order) and the queries (which
persons the test set happens to hold) are sources of variance, so:

* the 95% interval comes from a paired bootstrap that resamples seeds and queries together (S
  seeds and Q queries drawn with replacement, the same draw for both models), percentile method;
* the p-value is a paired sign-flip (permutation) test: each query's difference averaged over the
  seeds gets a random sign, two-sided, with the observed statistic counted among the flips.

A difference is called better (worse) only when its whole interval lies above (below) 0 and the
p-value is below 0.05: where few queries differ at all (Rank-1 of two close models: a handful of
queries change their first match), the percentile interval can exclude 0 while the sign flips of
those few queries cannot tell the models apart."""

from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from daaf.utils.errors import UserError

from .per_query import per_query_metric

__all__ = [
    "PairedComparison",
    "paired_bootstrap_interval",
    "sign_flip_p_value",
    "paired_differences",
    "compare_per_query",
    "METHOD_NOTE",
    "DEFAULT_RESAMPLES",
]

DEFAULT_RESAMPLES = 10000
SIGNIFICANCE = 0.05
METHOD_NOTE = (
    "95% interval: paired bootstrap over seeds and queries together ({resamples} resamples, percentile); "
    "p: paired sign-flip test over queries of the seed-averaged differences ({resamples} flips, two-sided); "
    "better / worse: the interval excludes 0 and p < 0.05"
)


@dataclass
class PairedComparison:
    """One metric of one model against its base: the mean paired difference (percentage points),
    its 95% interval, the sign-flip p-value and what they rest on."""

    metric: str
    mean_difference: float
    low: float
    high: float
    p_value: float
    seeds: Tuple[int, ...]
    num_queries: int
    num_resamples: int

    @property
    def verdict(self) -> str:
        """'better' / 'worse' when the interval excludes 0 and p < 0.05, else 'within the noise'."""
        if self.p_value >= SIGNIFICANCE:
            return "within the noise"
        return "better" if self.low > 0 else "worse" if self.high < 0 else "within the noise"

    def as_dict(self) -> dict:
        return {**asdict(self), "seeds": list(self.seeds), "verdict": self.verdict}


def _check_differences(differences: np.ndarray) -> np.ndarray:
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 2 or d.size == 0 or not np.isfinite(d).all():
        raise ValueError(f"expected a finite (seeds, queries) array of paired differences, got shape {d.shape}")
    return d


def paired_bootstrap_interval(
    differences: np.ndarray, num_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95, seed: int = 0, chunk: int = 500
) -> Tuple[float, float]:
    """The percentile interval of the mean of (S, Q) paired differences under resampling of the
    seeds (rows) and the queries (columns) with replacement, both at once. Deterministic for a
    given ``seed``."""
    d = _check_differences(differences)
    num_seeds, num_queries = d.shape
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, num_resamples, chunk):
        b = min(chunk, num_resamples - start)
        seed_counts = rng.multinomial(num_seeds, np.full(num_seeds, 1.0 / num_seeds), size=b)  # (b, S)
        query_counts = rng.multinomial(num_queries, np.full(num_queries, 1.0 / num_queries), size=b)  # (b, Q)
        means.append(((seed_counts @ d) * query_counts).sum(axis=1) / (num_seeds * num_queries))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.concatenate(means), [tail, 100 - tail])
    return float(low), float(high)


def sign_flip_p_value(differences: np.ndarray, num_flips: int = DEFAULT_RESAMPLES, seed: int = 0, chunk: int = 500) -> float:
    """Two-sided p-value of the mean of (S, Q) paired differences under random sign flips of each
    query's seed-averaged difference (the queries are the exchangeable units; a query's seeds share
    its sign). (1 + flips at least as extreme) / (1 + flips)."""
    per_query = _check_differences(differences).mean(axis=0)
    observed = abs(per_query.mean())
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, num_flips, chunk):
        b = min(chunk, num_flips - start)
        signs = rng.integers(0, 2, size=(b, len(per_query))) * 2 - 1
        extreme += int((np.abs(signs @ per_query) / len(per_query) >= observed - 1e-12).sum())
    return (1 + extreme) / (1 + num_flips)


def paired_differences(
    ours: Mapping[int, Dict[str, np.ndarray]], base: Mapping[int, Dict[str, np.ndarray]], metric: str
) -> Tuple[np.ndarray, Tuple[int, ...]]:
    """(S, Q) differences of ``metric`` (percentage points, ours - base) over the seeds both hold
    (per-query results by seed, :func:`daaf.evaluation.load_per_query`), restricted to the queries
    with a true match, and the paired seeds. A seed of only one side is not paired; results on
    different query lists are refused (UserError)."""
    seeds = tuple(sorted(set(ours) & set(base)))
    if not seeds:
        raise UserError(f"no seed is in both runs (ours: {sorted(ours)}, base: {sorted(base)}); nothing to pair")
    reference = base[seeds[0]]["query_files"]
    rows = []
    for s in seeds:
        for side, data in (("ours", ours[s]), ("base", base[s])):
            if len(data["query_files"]) != len(reference) or (data["query_files"] != reference).any():
                raise UserError(f"seed {s} ({side}): its queries differ from the base's: a paired comparison needs the same test split")
        rows.append(per_query_metric(ours[s], metric) - per_query_metric(base[s], metric))
    d = np.stack(rows)
    counted = np.isfinite(d).all(axis=0)  # queries without a true match are in no metric
    return d[:, counted], seeds


def compare_per_query(
    ours: Mapping[int, Dict[str, np.ndarray]],
    base: Mapping[int, Dict[str, np.ndarray]],
    metrics: Sequence[str] = ("mAP", "Rank-1", "mINP"),
    num_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> List[PairedComparison]:
    """One :class:`PairedComparison` per metric of ``ours`` against ``base`` (per-query results
    by seed), paired by seed and query."""
    out = []
    for metric in metrics:
        d, seeds = paired_differences(ours, base, metric)
        low, high = paired_bootstrap_interval(d, num_resamples, seed=seed)
        p = sign_flip_p_value(d, num_resamples, seed=seed)
        out.append(PairedComparison(metric, float(d.mean()), low, high, p, seeds, d.shape[1], num_resamples))
    return out
