"""A paper table's entries (paper beside measured, deltas to the base row, paired comparisons over
seeds and queries) and their Markdown, CSV and JSON files."""

import csv
import io
import json
from typing import List, Sequence, Tuple

from paper_tables import find_row, format_paper

from daaf.evaluation.comparison import DEFAULT_RESAMPLES, METHOD_NOTE, compare_per_query
from daaf.utils.file_io import atomic_write

from .plan import Plan
from .statistics import seed_differences, summarize

__all__ = ["table_results", "markdown", "write_outputs"]


# The metrics every comparison reports, after the row's own two.
COMPARED_METRICS = ("mAP", "Rank-1", "mINP")


def compared_metrics(row) -> Tuple[str, ...]:
    return tuple(dict.fromkeys((*row.metrics, *COMPARED_METRICS)))


def table_results(plan: Plan, table: str, num_resamples: int = DEFAULT_RESAMPLES) -> List[dict]:
    """Per row of ``table`` and test set: the paper's numbers, the measured ones per seed, their
    mean +- std, and against the base row: the difference paired by seed, and the paired comparison
    over seeds and queries (95% interval, p-value, verdict; :mod:`daaf.evaluation.comparison`).
    The synthetic version tests on SyntheticPersons and shows the paper's Market-1501 numbers."""
    out = []

    def paper_numbers(numbers, dataset):
        paper = {name: (a, b) for name, a, b in numbers or ()}
        return paper.get("Market1501" if plan.synthetic else dataset)

    for row in (r for r in plan.rows if r.table == table):
        for dataset in ("SyntheticPersons",) if plan.synthetic else row.test:
            entry = {"table": table, "experiment": row.experiment, "test": dataset, "metrics": list(row.metrics), "seeds": plan.seeds}
            paper = paper_numbers(row.paper, dataset)
            entry["paper"] = list(paper) if paper else None
            entry["paper_note"] = format_paper(row) if not paper else ""
            entry["built"] = row.built
            measured = [[plan.result(row, s, dataset, m) for s in plan.seeds] for m in row.metrics]
            entry["measured"] = measured  # None for a seed not run yet (--report)
            entry["seeds_done"] = sum(v is not None for v in measured[0])
            entry["mean_std"] = [summarize([x for x in v if x is not None]) if entry["seeds_done"] else None for v in measured]
            if row.base is not None:
                base = find_row(row.base)
                base_values = [[plan.result(base, s, dataset, m) for s in plan.seeds] for m in row.metrics]
                diffs = [seed_differences(ours, theirs) for ours, theirs in zip(measured, base_values)]
                entry["base"] = base.experiment
                entry["pairs"] = len(diffs[0])
                entry["delta_mean_std"] = [summarize(d) if len(d) else None for d in diffs]
                entry["seeds_better"] = [int((d > 0).sum()) for d in diffs]
                if row.paper_delta is not None:
                    paper_delta = paper_numbers(row.paper_delta, dataset)
                else:
                    base_paper = paper_numbers(base.paper, dataset)
                    paper_delta = [p - q for p, q in zip(paper, base_paper)] if paper and base_paper else None
                entry["paper_delta"] = list(paper_delta) if paper_delta else None
                entry["comparison"] = _comparison(plan, row, base, dataset, num_resamples)
            out.append(entry)
    return out


def _comparison(plan: Plan, row, base, dataset: str, num_resamples: int) -> List[dict]:
    """The paired comparisons of ``row`` against ``base`` on ``dataset`` over the seeds both have
    done ([] before any pair is done)."""
    ours, theirs = plan.per_query(row, dataset), plan.per_query(base, dataset)
    if not set(ours) & set(theirs):
        return []
    return [c.as_dict() for c in compare_per_query(ours, theirs, compared_metrics(row), num_resamples)]


def _pm(mean_std) -> str:
    mean, std = mean_std
    return f"{mean:.2f} +- {'n/a' if std is None else f'{std:.2f}'}"


def format_comparison(c: dict) -> str:
    """ "mAP +3.29 [+1.02, +5.61] p 0.004: better" of one comparison."""
    return f"{c['metric']} {c['mean_difference']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] p {c['p_value']:.3g}: {c['verdict']}"


def markdown(entries: Sequence[dict], title: str, note: str = "") -> str:
    """The table as Markdown: paper beside measured (mean +- std over the seeds), deltas to the
    base row paired by seed, and each paired comparison with its 95% interval and verdict."""
    paper_column = "paper (Market-1501)" if entries[0]["test"] == "SyntheticPersons" else "paper"
    lines = [
        f"### {title}",
        "",
        f"| experiment | test | metrics | {paper_column} | measured | paper delta | measured delta (seeds better) | vs base: mean difference [95% interval], p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    resamples = None
    for e in entries:
        paper = " / ".join(f"{v:.2f}" for v in e["paper"]) if e["paper"] else e["paper_note"]
        if not e.get("built", True):
            measured = "not built here"
        elif e["seeds_done"]:
            measured = " / ".join(_pm(ms) for ms in e["mean_std"])
            if e["seeds_done"] < len(e["seeds"]):
                measured += f" ({e['seeds_done']} of {len(e['seeds'])} seeds)"
        else:
            measured = "not run yet"
        paper_delta = " / ".join(f"{v:+.2f}" for v in e["paper_delta"]) if e.get("paper_delta") else "-"
        delta, compared = "-", "-"
        if e.get("pairs"):
            delta = " / ".join(
                f"{d[0]:+.2f} +- {'n/a' if d[1] is None else f'{d[1]:.2f}'} ({k}/{e['pairs']})"
                for d, k in zip(e["delta_mean_std"], e["seeds_better"])
            )
            delta += f" vs {e['base']}"
        if e.get("comparison"):
            compared = "<br>".join(format_comparison(c) for c in e["comparison"])
            resamples = e["comparison"][0]["num_resamples"]
        lines.append(
            f"| {e['experiment']} | {e['test']} | {' / '.join(e['metrics'])} | {paper} | {measured} | {paper_delta} | {delta} | {compared} |"
        )
    lines.append("")
    lines.append(
        f"Seeds {', '.join(map(str, entries[0]['seeds']))}; mean +- sample std (n/a for one seed); deltas are paired by seed (same test split)."
    )
    if resamples:
        lines.append(METHOD_NOTE.format(resamples=resamples) + ".")
    if note:
        lines.append("")
        lines.append(note)
    return "\n".join(lines)


def write_outputs(entries: Sequence[dict], stem: str, title: str, note: str = "") -> str:
    """stem.md / .csv / .json, each written atomically; returns the Markdown."""
    text = markdown(entries, title, note)
    with atomic_write(stem + ".md", "w") as f:
        f.write(text + "\n")
    with atomic_write(stem + ".json", "w") as f:
        json.dump(entries, f, indent=2)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "table",
            "experiment",
            "test",
            "metric",
            "paper",
            *[f"seed{s}" for s in entries[0]["seeds"]],
            "mean",
            "std",
            "base",
            "delta_mean",
            "delta_std",
            "difference",
            "ci_low",
            "ci_high",
            "p_value",
            "verdict",
        ]
    )
    for e in entries:
        for i, metric in enumerate(e["metrics"]):
            delta = e.get("delta_mean_std", [None] * len(e["metrics"]))[i]
            compared = next((c for c in e.get("comparison", ()) if c["metric"] == metric), None)
            writer.writerow(
                [
                    e["table"],
                    e["experiment"],
                    e["test"],
                    metric,
                    e["paper"][i] if e["paper"] else "",
                    *("" if v is None else v for v in e["measured"][i]),
                    *("" if v is None else v for v in (e["mean_std"][i] or ("", ""))),
                    e.get("base", ""),
                    *("" if v is None else v for v in (delta or ("", ""))),
                    *((compared[k] for k in ("mean_difference", "low", "high", "p_value", "verdict")) if compared else [""] * 5),
                ]
            )
    with atomic_write(stem + ".csv", "w") as f:
        f.write(buffer.getvalue())
    return text
