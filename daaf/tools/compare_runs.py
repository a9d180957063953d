"""Is a model better than another? Compares finished runs on the same test split, query by query:
for each metric, the mean paired difference with a 95% interval (paired bootstrap over seeds and
queries) and a sign-flip p-value, from the per-query results every evaluation writes
(OUTPUT_DIR/inference/<dataset>/per_query.npz).

    python tools/compare_runs.py output/bot output/daaf_bot                     # two runs
    python tools/compare_runs.py output/reproduce/synthetic_base output/reproduce/synthetic_HAB_PAB_coco6_keypoints_shared

A folder is one run (it holds inference/), or a folder of runs of one config with several seeds
(seed0/, seed1/, ... as projects/DAAF/reproduce.py writes them): those are paired by the SEED in
each run's config.yaml, and a seed only one side has is left out (and said). Two single runs are
paired as they are. Every further folder is compared with the first.
"""

import argparse
import glob
import json
import os
import re
import sys
from typing import Dict

import numpy as np
import yaml

from daaf.engine import positive_int, run_command_line
from daaf.evaluation import PER_QUERY_FILE, load_per_query, per_query_metric
from daaf.evaluation.comparison import DEFAULT_RESAMPLES, METHOD_NOTE, compare_per_query
from daaf.utils.errors import UserError
from daaf.utils.file_io import atomic_write

_SEED_FOLDER = re.compile(r"seed(\d+)$")


def run_folders(folder: str) -> Dict[int, str]:
    """{seed: run folder} of ``folder``: itself when it holds an evaluation, else its sub-folders
    that do, by the SEED of their config.yaml (or their seed<N> name)."""
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: not a folder (give a run's OUTPUT_DIR, or a folder of its seed runs)")
    if os.path.isdir(os.path.join(folder, "inference")):
        return {_seed_of(folder): folder}
    runs = {}
    for sub in sorted(p for p in glob.glob(os.path.join(folder, "*")) if os.path.isdir(os.path.join(p, "inference"))):
        seed = _seed_of(sub)
        if seed in runs:
            raise UserError(f"{folder}: {runs[seed]} and {sub} are both seed {seed}; give the runs to compare one by one")
        runs[seed] = sub
    if not runs:
        raise UserError(f"{folder}: holds no evaluated run (no inference/ in it or in its sub-folders)")
    return runs


def _seed_of(run: str) -> int:
    config = os.path.join(run, "config.yaml")
    if os.path.isfile(config):
        with open(config) as f:
            try:
                seed = (yaml.safe_load(f) or {}).get("SEED")
            except yaml.YAMLError:
                raise UserError(f"{config}: not a readable config file") from None
        if isinstance(seed, int):
            return seed
    match = _SEED_FOLDER.search(os.path.basename(os.path.normpath(run)))
    return int(match.group(1)) if match else -1


def per_query_by_seed(runs: Dict[int, str], dataset: str) -> Dict[int, dict]:
    return {seed: load_per_query(os.path.join(run, "inference", dataset, PER_QUERY_FILE)) for seed, run in runs.items()}


def evaluated_datasets(runs: Dict[int, str]) -> set:
    found = [
        {os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(r, "inference", "*", PER_QUERY_FILE))} for r in runs.values()
    ]
    return set.intersection(*found) if found else set()


def main(args):
    base_runs = run_folders(args.base)
    report = []
    for other in args.others:
        other_runs = run_folders(other)
        if len(base_runs) == 1 and len(other_runs) == 1:  # two single runs: paired as given
            base_paired, other_paired = {0: next(iter(base_runs.values()))}, {0: next(iter(other_runs.values()))}
        else:
            base_paired, other_paired = base_runs, other_runs
            unpaired = sorted(set(base_runs) ^ set(other_runs))
            if unpaired:
                print(f"{other}: seeds {', '.join(map(str, unpaired))} are in only one of the two; left out")
        datasets = evaluated_datasets(base_paired) & evaluated_datasets(other_paired)
        if args.dataset:
            datasets &= {args.dataset}
        if not datasets:
            what = f"on {args.dataset} " if args.dataset else ""
            raise UserError(f"{args.base} and {other}: no test set evaluated {what}in both (expected inference/<dataset>/{PER_QUERY_FILE})")
        for dataset in sorted(datasets):
            ours, base = per_query_by_seed(other_paired, dataset), per_query_by_seed(base_paired, dataset)
            comparisons = compare_per_query(ours, base, args.metrics, args.resamples)
            seeds = comparisons[0].seeds
            print(f"\n{other} vs {args.base} on {dataset}: {comparisons[0].num_queries} queries, {len(seeds)} paired run(s)")
            print("| metric | base | other | difference [95% interval] | p | verdict |\n|---|---|---|---|---|---|")
            for c in comparisons:
                base_mean = np.mean([np.nanmean(per_query_metric(base[s], c.metric)) for s in seeds])
                ours_mean = np.mean([np.nanmean(per_query_metric(ours[s], c.metric)) for s in seeds])
                print(
                    f"| {c.metric} | {base_mean:.2f} | {ours_mean:.2f} | {c.mean_difference:+.2f} [{c.low:+.2f}, {c.high:+.2f}] "
                    f"| {c.p_value:.3g} | {c.verdict} |"
                )
                report.append(
                    {"base": args.base, "other": other, "dataset": dataset, "base_mean": base_mean, "other_mean": ours_mean, **c.as_dict()}
                )
    print("\n" + METHOD_NOTE.format(resamples=args.resamples) + ".")
    if args.output:
        with atomic_write(args.output, "w") as f:
            json.dump(report, f, indent=2)
        print(f"Written to {args.output}")


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", help="the base run (OUTPUT_DIR), or a folder of its seed runs")
    p.add_argument("others", nargs="+", help="runs (or folders of seed runs) to compare with the base")
    p.add_argument("--dataset", default="", help="only this test set (default: every test set both evaluated)")
    p.add_argument("--metrics", nargs="+", default=["mAP", "Rank-1", "mINP"], help="mAP, mINP or Rank-<k>")
    p.add_argument("--resamples", type=positive_int, default=DEFAULT_RESAMPLES, help="bootstrap resamples and sign flips")
    p.add_argument("--output", help="also write the comparisons as JSON here")
    return p


def cli() -> int:
    """The command line (``daaf-compare-runs``, ``python -m daaf.tools.compare_runs``, ``python tools/compare_runs.py``); the exit code."""
    return run_command_line(main, parser)


if __name__ == "__main__":
    sys.exit(cli())
