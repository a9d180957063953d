"""A paper table's entries (paper beside measured, deltas to the base row) and their Markdown, CSV
and JSON files."""

import csv
import io
import json
from typing import List, Sequence

from paper_tables import find_row, format_paper

from daaf.utils.file_io import atomic_write

from .plan import Plan
from .statistics import paired_differences, summarize

__all__ = ["table_results", "markdown", "write_outputs"]


def table_results(plan: Plan, table: str) -> List[dict]:
    """Per row of ``table`` and test set: the paper's numbers, the measured ones per seed, their
    mean +- std, and the paired difference to the base row (same seed) with the seeds it gains on.
    The synthetic version tests on SyntheticPersons and shows the paper's Market-1501 numbers."""
    out = []

    def paper_numbers(row, dataset):
        paper = {name: (a, b) for name, a, b in row.paper or ()}
        return paper.get("Market1501" if plan.synthetic else dataset)

    for row in (r for r in plan.rows if r.table == table):
        for dataset in ("SyntheticPersons",) if plan.synthetic else row.test:
            entry = {"table": table, "experiment": row.experiment, "test": dataset, "metrics": list(row.metrics), "seeds": plan.seeds}
            paper = paper_numbers(row, dataset)
            entry["paper"] = list(paper) if paper else None
            entry["paper_note"] = format_paper(row) if not paper else ""
            measured = [[plan.result(row, s, dataset, m) for s in plan.seeds] for m in row.metrics]
            entry["measured"] = measured  # None for a seed not run yet (--report)
            entry["seeds_done"] = sum(v is not None for v in measured[0])
            entry["mean_std"] = [summarize([x for x in v if x is not None]) if entry["seeds_done"] else None for v in measured]
            if row.base is not None:
                base = find_row(row.base)
                base_values = [[plan.result(base, s, dataset, m) for s in plan.seeds] for m in row.metrics]
                diffs = [paired_differences(ours, theirs) for ours, theirs in zip(measured, base_values)]
                entry["base"] = base.experiment
                entry["pairs"] = len(diffs[0])
                entry["delta_mean_std"] = [summarize(d) if len(d) else None for d in diffs]
                entry["seeds_better"] = [int((d > 0).sum()) for d in diffs]
                base_paper = paper_numbers(base, dataset)
                entry["paper_delta"] = [p - q for p, q in zip(paper, base_paper)] if paper and base_paper else None
            out.append(entry)
    return out


def _pm(mean_std) -> str:
    mean, std = mean_std
    return f"{mean:.2f} +- {std:.2f}"


def markdown(entries: Sequence[dict], title: str) -> str:
    """The table as Markdown: paper beside measured (mean +- std over the seeds), deltas to the base row."""
    paper_column = "paper (Market-1501)" if entries[0]["test"] == "SyntheticPersons" else "paper"
    lines = [
        f"### {title}",
        "",
        f"| experiment | test | metrics | {paper_column} | measured | paper delta | measured delta (seeds better) |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        paper = " / ".join(f"{v:.2f}" for v in e["paper"]) if e["paper"] else e["paper_note"]
        measured = " / ".join(_pm(ms) for ms in e["mean_std"]) if e["seeds_done"] else "not run yet"
        if 0 < e["seeds_done"] < len(e["seeds"]):
            measured += f" ({e['seeds_done']} of {len(e['seeds'])} seeds)"
        paper_delta = " / ".join(f"{v:+.2f}" for v in e["paper_delta"]) if e.get("paper_delta") else "-"
        delta = "-"
        if e.get("pairs"):
            delta = " / ".join(f"{m:+.2f} +- {s:.2f} ({k}/{e['pairs']})" for (m, s), k in zip(e["delta_mean_std"], e["seeds_better"]))
            delta += f" vs {e['base']}"
        lines.append(f"| {e['experiment']} | {e['test']} | {' / '.join(e['metrics'])} | {paper} | {measured} | {paper_delta} | {delta} |")
    lines.append("")
    lines.append(f"Seeds {', '.join(map(str, entries[0]['seeds']))}; mean +- sample std; deltas are paired by seed (same test split).")
    return "\n".join(lines)


def write_outputs(entries: Sequence[dict], stem: str, title: str) -> str:
    """stem.md / .csv / .json, each written atomically; returns the Markdown."""
    text = markdown(entries, title)
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
        ]
    )
    for e in entries:
        for i, metric in enumerate(e["metrics"]):
            delta = e.get("delta_mean_std", [None] * len(e["metrics"]))[i]
            writer.writerow(
                [
                    e["table"],
                    e["experiment"],
                    e["test"],
                    metric,
                    e["paper"][i] if e["paper"] else "",
                    *("" if v is None else v for v in e["measured"][i]),
                    *(e["mean_std"][i] or ("", "")),
                    e.get("base", ""),
                    *(delta or ("", "")),
                ]
            )
    with atomic_write(stem + ".csv", "w") as f:
        f.write(buffer.getvalue())
    return text
