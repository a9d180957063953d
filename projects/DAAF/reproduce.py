#!/usr/bin/env python
"""One command per paper table: train (or evaluate) every row of the table with each seed through
the training launcher, then print and write the paper's numbers beside the measured ones, with the
mean +- std over seeds and the paired difference to each row's base row.

    python projects/DAAF/reproduce.py --table 4 --seeds 0 1 2 [--num-gpus 4] [KEY VALUE ...]
    python projects/DAAF/reproduce.py --table 2 --dataset Market1501 --dry-run      # the commands only
    python projects/DAAF/reproduce.py --table 4 --synthetic                         # CPU-sized, synthetic persons
    python projects/DAAF/reproduce.py --table 4 --synthetic --report                # the table of the runs done so far

Tables: 2 (main results), 3 (partial ReID), 4-7 (ablations); rows and paper numbers come from
projects/DAAF/paper_tables.py. A row's base row (for the deltas) runs too. Each (config, seed) is
one run in --output-dir/<config>/seed<N>; a run whose OUTPUT_DIR already holds its results is not
run again, a killed one goes on with --resume, and rows that share a config share the run, so a
killed command goes on where it stopped. Before anything trains, every dataset folder and every
label file the rows need is checked (one error line naming the first missing one).

--synthetic runs the rows of Tables 4-7 on the synthetic persons with the CPU-sized TriNet of
configs/Synthetic/ (the rows' branches, groups, targets and decoders; single-crop test). Outputs:
--output-dir/table<T>[_synthetic].{md,csv,json}.
"""

import argparse
import csv
import io
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from paper_tables import ROWS, TABLE2_DATASETS, PaperRow, find_row, format_paper

from daaf.config import build_config
from daaf.data import PERSON_LABEL_FIELDS, get_dataset, label_file_path, resolve_labels_dir
from daaf.data.datasets import register_custom_datasets
from daaf.engine import run_reporting_user_errors
from daaf.modeling import model_input_fields
from daaf.utils.errors import UserError
from daaf.utils.file_io import atomic_write

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYNTHETIC_CONFIG = "configs/Synthetic/trinet_R18.yaml"
SYNTHETIC_TABLES = ("4", "5", "6", "7")


@dataclass(frozen=True)
class Run:
    """One training (or evaluation) of a config with a seed, in its own OUTPUT_DIR."""

    config: str
    opts: Tuple[str, ...]
    output_dir: str
    evaluates: Optional["Run"] = None  # evaluation only: the run whose model_final it tests

    @property
    def weights(self) -> str:
        return os.path.join(self.output_dir, "model_final.pth")

    @property
    def results_file(self) -> str:
        return os.path.join(self.output_dir, "inference", "results.json")

    def done(self) -> bool:
        """Its results are there, newer than the model they are of."""
        model = self.evaluates.weights if self.evaluates else self.weights
        return (
            os.path.isfile(self.results_file) and os.path.isfile(model) and os.path.getmtime(self.results_file) >= os.path.getmtime(model)
        )

    def command(self, num_gpus: int) -> List[str]:
        """The train_net command that makes its results now (train, go on, or evaluate)."""
        base = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", self.config, "--num-gpus", str(num_gpus)]
        if self.evaluates is not None:
            return base + ["--eval-only", *self.opts, "MODEL.WEIGHTS", self.evaluates.weights, "OUTPUT_DIR", self.output_dir]
        if os.path.isfile(self.weights):  # trained; its evaluation was not written (killed in it)
            return base + ["--eval-only", *self.opts, "MODEL.WEIGHTS", self.weights, "OUTPUT_DIR", self.output_dir]
        return base + ["--resume", *self.opts, "OUTPUT_DIR", self.output_dir]

    def results(self) -> Dict[str, Dict[str, float]]:
        with open(self.results_file) as f:
            return json.load(f)["results"]


def synthetic_opts(row: PaperRow) -> Tuple[str, ...]:
    """The row's DAAF settings on the CPU-sized synthetic TriNet (HAB reads the shared final map,
    as configs/Synthetic/daaf_trinet_R18.yaml does: 1.25x faster on a CPU than the copy)."""
    opts = ["TEST.FLIP.ENABLED", "False", "MODEL.DAAF.BRANCHES", str(list(row.branches))]
    if "HAB" in row.branches:
        opts += ["MODEL.DAAF.HAB.ENCODER", "shared"]
    if "PAB" in row.branches:
        opts += [
            "MODEL.DAAF.PAB.GROUPS",
            row.groups,
            "MODEL.DAAF.PAB.TARGET",
            row.target,
            "MODEL.DAAF.PAB.SHARED_DECODER",
            str(row.shared_decoder),
        ]
    return tuple(opts)


def synthetic_name(row: PaperRow) -> str:
    """A run folder name from a row's DAAF settings: base, HAB, PAB_coco6_keypoints_shared, ..."""
    if not row.branches:
        return "base"
    parts = list(row.branches)
    if "PAB" in row.branches:
        parts += [row.groups, row.target, "shared" if row.shared_decoder else "independent"]
    return "_".join(parts)


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


class Plan:
    """The rows of the requested tables, their base rows, and the runs they need."""

    def __init__(
        self, tables: Sequence[str], datasets: Sequence[str], seeds: Sequence[int], output_dir: str, synthetic: bool, opts: Sequence[str]
    ):
        self.synthetic, self.seeds, self.output_dir, self.opts = synthetic, list(seeds), output_dir, tuple(opts)
        chosen = [r for r in ROWS if r.table in tables and (not datasets or set(r.test) & set(datasets) or r.table != "2")]
        if synthetic:
            refused = sorted({r.table for r in chosen} - set(SYNTHETIC_TABLES))
            if refused:
                raise UserError(f"--synthetic: tables {', '.join(SYNTHETIC_TABLES)} have a synthetic version, not {', '.join(refused)}")
        if not chosen:
            raise UserError(f"--table {' '.join(tables)} --dataset {' '.join(datasets)}: no row of the paper's tables matches")
        self.rows = list(chosen)
        for row in chosen:  # the base rows the deltas need, and the rows whose models are evaluated
            for key in (row.base, row.weights_from):
                if key is not None and find_row(key) not in self.rows:
                    self.rows.append(find_row(key))
        self._runs: Dict[Tuple, Run] = {}

    def run(self, row: PaperRow, seed: int) -> Run:
        """The run that gives ``row``'s numbers with ``seed`` (shared by the rows of one config)."""
        if row.weights_from is not None:
            source = self.run(find_row(row.weights_from), seed)
            key = (row.config, row.overrides, seed, source.output_dir)
            folder = os.path.join(source.output_dir, "eval_" + slug(row.config.removesuffix(".yaml") + "_".join(row.overrides)))
            return self._runs.setdefault(key, Run(self._config(row), self._opts(row, seed), folder, evaluates=source))
        opts = self._opts(row, seed)
        name = "synthetic_" + synthetic_name(row) if self.synthetic else slug(row.config.removesuffix(".yaml"))
        key = (self._config(row), opts)
        return self._runs.setdefault(key, Run(self._config(row), opts, os.path.join(self.output_dir, name, f"seed{seed}")))

    def result(self, row: PaperRow, seed: int, dataset: str, metric: str) -> Optional[float]:
        """``row``'s ``metric`` on ``dataset`` with ``seed``; None when that run is not done."""
        run = self.run(row, seed)
        return run.results()[dataset][metric] if run.done() else None

    def _config(self, row: PaperRow) -> str:
        return os.path.join(REPO, SYNTHETIC_CONFIG if self.synthetic else row.config)

    def _opts(self, row: PaperRow, seed: int) -> Tuple[str, ...]:
        extra = synthetic_opts(row) if self.synthetic else ()
        return (*extra, *row.overrides, "SEED", str(seed), *self.opts)

    def all_runs(self) -> List[Run]:
        """Every run, those a run evaluates first, each once."""
        runs = []
        for row in self.rows:
            for seed in self.seeds:
                run = self.run(row, seed)
                for r in ([run.evaluates] if run.evaluates else []) + [run]:
                    if r not in runs:
                        runs.append(r)
        return runs


def check_inputs(runs: Sequence[Run]) -> None:
    """A one-line UserError for the first dataset folder or label file a run needs that is missing."""
    for run in runs:
        cfg = build_config(run.config, run.opts)
        register_custom_datasets(cfg.DATASETS.CUSTOM)
        for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST) if run.evaluates is None else cfg.DATASETS.TEST:
            get_dataset(name, cfg.DATASETS.ROOT, log=False)  # names the missing folder
        if run.evaluates is None and model_input_fields(cfg) & PERSON_LABEL_FIELDS:
            for name in cfg.DATASETS.TRAIN:
                path = label_file_path(resolve_labels_dir(cfg), name, "train")
                if not os.path.isfile(path):
                    raise UserError(
                        f"label file not found: {path} (the DAAF rows train on person labels); make it with: "
                        f"python tools/train_net.py --config-file {os.path.relpath(run.config, REPO)} --pseudo-label"
                    )


def summarize(values: Sequence[float]) -> Tuple[float, float]:
    """(mean, sample standard deviation; 0 for one value) of a non-empty sequence."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def paired_differences(ours: Sequence[Optional[float]], base: Sequence[Optional[float]]) -> np.ndarray:
    """ours - base for the seeds where both are known (None: not run yet)."""
    return np.array([a - b for a, b in zip(ours, base) if a is not None and b is not None], dtype=np.float64)


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


def train_and_evaluate(runs: Sequence[Run], num_gpus: int, output_dir: str, verbose: bool) -> None:
    """Check the inputs of the runs not done (one error line), then make each one's results, in order."""
    check_inputs([r for r in runs if not r.done()])
    start = time.time()
    for i, run in enumerate(runs, 1):
        what = "evaluate" if run.evaluates else "train"
        if run.done():
            print(f"[{i}/{len(runs)}] done before: {os.path.relpath(run.output_dir, output_dir)}", flush=True)
            continue
        print(f"[{i}/{len(runs)}] {what} {os.path.relpath(run.output_dir, output_dir)} ({time.time() - start:.0f} s so far)", flush=True)
        command = run.command(num_gpus)
        code = subprocess.call(command, cwd=REPO, stdout=None if verbose else subprocess.DEVNULL)
        if code != 0 or not run.done():
            raise UserError(f"{shlex.join(command)} failed (exit {code}); its log: {os.path.join(run.output_dir, 'log.txt')}")


def main(args) -> int:
    tables = ["2", "3", "4", "5", "6", "7", "occlusion"] if args.table == ["all"] else args.table
    output_dir = os.path.abspath(args.output_dir)
    plan = Plan(tables, args.dataset, args.seeds, output_dir, args.synthetic, args.opts)
    runs = plan.all_runs()
    if args.dry_run:
        for run in runs:
            state = "done" if run.done() else "to run"
            print(f"# {state}\n{shlex.join(run.command(args.num_gpus))}")
        return 0
    if not args.report:
        train_and_evaluate(runs, args.num_gpus, output_dir, args.verbose)
    for table in tables:
        suffix = "_synthetic" if args.synthetic else ""
        title = ("Occlusion (beyond the paper)" if table == "occlusion" else f"Table {table}") + (
            " (synthetic persons, CPU-sized TriNet)" if args.synthetic else ""
        )
        text = write_outputs(table_results(plan, table), os.path.join(output_dir, f"table{table}{suffix}"), title)
        print("\n" + text)
    print(f"\nWritten to {output_dir}/table*.{{md,csv,json}}")
    return 0


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", nargs="+", required=True, choices=["2", "3", "4", "5", "6", "7", "occlusion", "all"])
    p.add_argument("--dataset", nargs="*", default=[], choices=list(TABLE2_DATASETS), help="Table 2: only these test sets")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--synthetic", action="store_true", help="Tables 4-7 on the synthetic persons (CPU-sized)")
    p.add_argument("--num-gpus", type=int, default=1)
    p.add_argument("--output-dir", default="output/reproduce")
    p.add_argument("--dry-run", action="store_true", help="list the commands, run nothing")
    p.add_argument("--report", action="store_true", help="write the tables from the runs done so far, run nothing")
    p.add_argument("--verbose", action="store_true", help="show the training logs")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for every run")
    return p


if __name__ == "__main__":
    sys.exit(run_reporting_user_errors(main, parser().parse_args()) or 0)
