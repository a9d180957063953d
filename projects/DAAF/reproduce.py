#!/usr/bin/env python
"""One command per paper table: train (or evaluate) every row of the table with each seed through
the training launcher, then print and write the paper's numbers beside the measured ones, with the
mean +- std over seeds, the paired difference to each row's base row, and its 95% interval from a
paired bootstrap over seeds and queries with a sign-flip p-value (a row is better only when the
interval excludes 0).

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
import os
import shlex
import sys

from paper_tables import TABLE2_DATASETS, TABLE_NOTES
from reproduction.plan import Plan
from reproduction.runs import train_and_evaluate
from reproduction.tables import table_results, write_outputs

from daaf.engine import non_negative_int, positive_int, run_reporting_user_errors
from daaf.evaluation.comparison import DEFAULT_RESAMPLES


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
        entries = table_results(plan, table, args.resamples)
        text = write_outputs(entries, os.path.join(output_dir, f"table{table}{suffix}"), title, TABLE_NOTES.get(table, ""))
        print("\n" + text)
    print(f"\nWritten to {output_dir}/table*.{{md,csv,json}}")
    return 0


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", nargs="+", required=True, choices=["2", "3", "4", "5", "6", "7", "occlusion", "all"])
    p.add_argument("--dataset", nargs="*", default=[], choices=list(TABLE2_DATASETS), help="Table 2: only these test sets")
    p.add_argument("--seeds", nargs="+", type=non_negative_int, default=[0, 1, 2])
    p.add_argument("--synthetic", action="store_true", help="Tables 4-7 on the synthetic persons (CPU-sized)")
    p.add_argument("--num-gpus", type=positive_int, default=1)
    p.add_argument("--output-dir", default="output/reproduce")
    p.add_argument("--dry-run", action="store_true", help="list the commands, run nothing")
    p.add_argument("--report", action="store_true", help="write the tables from the runs done so far, run nothing")
    p.add_argument("--verbose", action="store_true", help="show the training logs")
    p.add_argument("--resamples", type=positive_int, default=DEFAULT_RESAMPLES, help="bootstrap resamples and sign flips per comparison")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for every run")
    return p


if __name__ == "__main__":
    sys.exit(run_reporting_user_errors(main, parser().parse_args()) or 0)
