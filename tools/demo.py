#!/usr/bin/env python
"""The main job on a CPU: train the CPU-sized TriNet and its DAAF version (HAB + PAB) on the
synthetic persons with tools/train_net.py, evaluate both, draw what they look at, and print one
table. The synthetic dataset (with its exact masks and keypoints) must exist:

    python datasets/prepare_synthetic.py
    python tools/demo.py [KEY VALUE ...]          # overrides go to both training runs

Outputs: OUTPUT_DIR of each run (output/synthetic/<config>/: metrics.json, TensorBoard events,
checkpoints, log.txt, inference/SyntheticPersons/{cmc.png,ranks.npz}) and, in output/synthetic/:
summary.json, cmc.png (both models), attention_<config>.png, ranked_list_<config>.png.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from daaf.engine import positive_int, run_reporting_user_errors
from daaf.evaluation.comparison import DEFAULT_RESAMPLES, METHOD_NOTE
from daaf.utils.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUNS = [("TriNet", "configs/Synthetic/trinet_R18.yaml"), ("DAAF-TriNet", "configs/Synthetic/daaf_trinet_R18.yaml")]
DATASET = "SyntheticPersons"


def train(config: str, opts) -> float:
    """Run tools/train_net.py on ``config``; returns its wall time in seconds."""
    start = time.perf_counter()
    command = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", config, *opts]
    print("\n$ " + " ".join(command), flush=True)
    if subprocess.call(command, cwd=REPO) != 0:
        raise UserError(f"training {config} failed (see its log above)")
    return time.perf_counter() - start


def run_results(output_dir: str) -> dict:
    """The last evaluation and the training time from a run's metrics.json."""
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.isfile(path):
        raise UserError(f"{path} not found: the run did not finish")
    result = {}
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            result.update({k.split("/", 1)[1]: v for k, v in entry.items() if k.startswith(DATASET + "/")})
            if "train_time_s" in entry:
                result["train_time_s"] = entry["train_time_s"]
    if "mAP" not in result:
        raise UserError(f"{path} holds no evaluation of {DATASET}")
    return result


def draw_pictures(config: str, output_dir: str, out_root: str, opts, num_crops: int = 6):
    """Attention maps (the paper's HAM/PAM at conv1, and HAB/PAB outputs for DAAF) of ``num_crops`` query crops
    and the 6 worst ranked lists of ``output_dir``'s model; for a model that predicts keypoint
    heatmaps (DAAF's PAB), how well their peaks find the query crops' keypoints. Returns ({picture kind: path}, PCK dict or None)."""
    from daaf.analysis.attention_maps import attention_figure
    from daaf.analysis.branch_outputs import PCK_ALPHA, keypoint_pck, labelled_query_batch
    from daaf.data import get_dataset
    from daaf.data.image_list import read_test_images
    from daaf.engine import inference_config, load_inference_model
    from daaf.evaluation.ranked_list import load_ranks, ranked_list_figure, select_queries
    from daaf.utils.visualization import save_image

    tag = os.path.splitext(os.path.basename(config))[0]
    cfg = inference_config(os.path.join(REPO, config), [*opts, "MODEL.WEIGHTS", os.path.join(output_dir, "model_final.pth")])
    model = load_inference_model(cfg, keep_branches=True)
    query = get_dataset(DATASET, cfg.DATASETS.ROOT, log=False).query
    paths = [r["file_name"] for r in query[:: max(len(query) // num_crops, 1)][:num_crops]]
    grid, _ = attention_figure(model, read_test_images(cfg, paths), branches=bool(model.branch_names))
    pictures = {"attention": os.path.join(out_root, f"attention_{tag}.png")}
    save_image(pictures["attention"], grid)

    ranks = load_ranks(os.path.join(output_dir, "inference", DATASET, "ranks.npz"))
    pictures["ranked_list"] = os.path.join(out_root, f"ranked_list_{tag}.png")
    save_image(pictures["ranked_list"], ranked_list_figure(ranks, select_queries(ranks["query_ap"], "worst", 6), 8))
    pck = None
    if model.predicts_keypoints:
        batch = labelled_query_batch(cfg)
        pck = keypoint_pck(model, batch.images, batch.person_labels.keypoints, PCK_ALPHA)
    return pictures, pck


def format_table(results: dict) -> str:
    header = f"{'model':<12} | {'mAP':>6} | {'Rank-1':>6} | {'Rank-5':>6} | {'mINP':>6} | {'train time':>10}"
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        minutes, seconds = divmod(int(round(r.get("train_time_s", float("nan")))), 60)
        lines.append(
            f"{name:<12} | {r['mAP']:6.2f} | {r['Rank-1']:6.2f} | {r['Rank-5']:6.2f} | {r['mINP']:6.2f} | {minutes:>6d}m{seconds:02d}s"
        )
    return "\n".join(lines)


def compare_demo_runs(base_dir: str, daaf_dir: str):
    """The paired comparisons of DAAF-TriNet's run against TriNet's on the demo's test set."""
    from daaf.evaluation import PER_QUERY_FILE, load_per_query
    from daaf.evaluation.comparison import compare_per_query

    def per_query(run):
        return {0: load_per_query(os.path.join(run, "inference", DATASET, PER_QUERY_FILE))}

    return compare_per_query(per_query(daaf_dir), per_query(base_dir))


def main(args):
    import numpy as np

    from daaf.utils.file_io import atomic_write
    from daaf.utils.visualization import plot_cmc

    opts = args.opts
    out_root = os.path.abspath(args.output_root)
    os.makedirs(out_root, exist_ok=True)
    results, pictures, curves, output_dirs = {}, {}, {}, {}
    for name, config in RUNS:
        output_dir = os.path.join(out_root, os.path.splitext(os.path.basename(config))[0])
        run_opts = [*opts, "OUTPUT_DIR", output_dir]
        output_dirs[name] = output_dir
        if not (args.skip_existing and os.path.isfile(os.path.join(output_dir, "model_final.pth"))):
            train(config, run_opts)
        results[name] = run_results(output_dir)
        pictures[name], pck = draw_pictures(config, output_dir, out_root, run_opts, args.attention_crops)
        if pck is not None:
            results[name]["pab_pck"] = pck
        curves[name] = np.load(os.path.join(output_dir, "inference", DATASET, "ranks.npz"))["cmc"]
    plot_cmc(curves, os.path.join(out_root, "cmc.png"))
    with atomic_write(os.path.join(out_root, "summary.json"), "w") as f:
        json.dump({"results": results, "output_dirs": output_dirs, "pictures": pictures}, f, indent=2)

    base, daaf = results["TriNet"], results["DAAF-TriNet"]
    print("\n" + "=" * 72)
    print(f"Synthetic persons ({DATASET}), ResNet-18 TriNet vs DAAF-TriNet, 128x64, CPU\n")
    print(format_table(results))
    verdict = "beats" if daaf["mAP"] > base["mAP"] else "does NOT beat"
    comparisons = compare_demo_runs(output_dirs["TriNet"], output_dirs["DAAF-TriNet"])
    summary_comparison = [c.as_dict() for c in comparisons]
    if "pab_pck" in daaf:
        from daaf.analysis.branch_outputs import PCK_ALPHA, format_pck

        print(f"DAAF-TriNet on the {DATASET} query crops: {format_pck(daaf['pab_pck'], PCK_ALPHA)}")
    print(f"\nDAAF-TriNet {verdict} TriNet here (mAP {daaf['mAP'] - base['mAP']:+.2f}, Rank-1 {daaf['Rank-1'] - base['Rank-1']:+.2f}).")
    print("Paired over the queries (one seed, so the seeds' own variance is not in it):")
    for c in comparisons:
        print(f"  {c.metric} {c.mean_difference:+.2f} [{c.low:+.2f}, {c.high:+.2f}], p {c.p_value:.3g}: {c.verdict}")
    print("  " + METHOD_NOTE.format(resamples=DEFAULT_RESAMPLES))
    with atomic_write(os.path.join(out_root, "comparison.json"), "w") as f:
        json.dump(summary_comparison, f, indent=2)
    print("\nOutputs:")
    for name, output_dir in output_dirs.items():
        print(f"  {name:<12} {output_dir}/  (metrics.json, log.txt, checkpoints, events.out.tfevents.*)")
    print(f"  TensorBoard  tensorboard --logdir {args.output_root}")
    print(f"  CMC curves   {os.path.join(args.output_root, 'cmc.png')}")
    for name, paths in pictures.items():
        for kind, path in paths.items():
            print(f"  {kind:<12} {name}: {path}")
    print(f"  summary      {os.path.join(args.output_root, 'summary.json')}")


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-root", default="output/synthetic", help="where each run's OUTPUT_DIR, the pictures and summary.json go")
    p.add_argument("--skip-existing", action="store_true", help="do not retrain a run whose model_final.pth exists")
    p.add_argument(
        "--attention-crops", type=positive_int, default=6, help="query crops in the attention pictures (a few seconds each on a CPU)"
    )
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for both runs")
    return p


if __name__ == "__main__":
    sys.exit(run_reporting_user_errors(main, parser().parse_args()) or 0)
