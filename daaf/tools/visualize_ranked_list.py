"""Ranked lists of an evaluation as a picture: for the worst (default) or best queries by AP, or
chosen ones, the query and its top-k gallery images, best first, with their distances; green
borders for the same identity, red for another. Reads the ranks.npz an evaluation writes with
TEST.SAVE_RANKS True:

    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS model_final.pth TEST.SAVE_RANKS True
    python tools/visualize_ranked_list.py --ranks OUTPUT_DIR/inference/<dataset>/ranks.npz --order worst
"""

import argparse
import os
import sys

from daaf.engine import positive_int, run_command_line
from daaf.evaluation.ranked_list import load_ranks, ranked_list_figure, select_queries
from daaf.utils.visualization import save_image


def main(args):
    ranks = load_ranks(args.ranks)
    queries = select_queries(ranks["query_ap"], args.order, args.num_queries, args.queries)
    print(f"{'query':>6} {'AP':>7}  file")
    for q in queries:
        print(f"{q:>6} {ranks['query_ap'][q] * 100:7.2f}  {ranks['query_files'][q]}")
    output = args.output or os.path.join(os.path.dirname(os.path.abspath(args.ranks)), "ranked_list.png")
    save_image(output, ranked_list_figure(ranks, queries, args.top_k))
    print(f"{len(queries)} ranked lists ({args.order} first) drawn in {output}")


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", required=True, help="ranks.npz written by an evaluation with TEST.SAVE_RANKS True")
    p.add_argument(
        "--order", default="worst", choices=["worst", "best", "given"], help="which queries: lowest AP first, highest first, or --queries"
    )
    p.add_argument("--queries", type=int, nargs="*", default=[], help="query indices, with --order given")
    p.add_argument("--num-queries", type=positive_int, default=8)
    p.add_argument("--top-k", type=positive_int, default=10)
    p.add_argument("--output", help="the picture (default: ranked_list.png beside the ranks file)")
    return p


def cli() -> int:
    """The command line (``daaf-visualize-ranked-list``, ``python -m daaf.tools.visualize_ranked_list``, ``python tools/visualize_ranked_list.py``); the exit code."""
    return run_command_line(main, parser)


if __name__ == "__main__":
    sys.exit(cli())
