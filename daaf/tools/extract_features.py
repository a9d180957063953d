"""Embeddings of your own crops (a folder, a glob, or files) with a trained model, as an .npz with
"features" (N, D) float32 and "file_names" (N,). Test-time flip / 5 crops follow the config.

    python tools/extract_features.py --config-file configs/Synthetic/trinet_R18.yaml \
        --input 'tracker_crops/**/*.jpg' --output crops.npz MODEL.WEIGHTS output/synthetic/trinet_R18/model_final.pth
"""

import sys

import numpy as np

from daaf.data.image_list import list_image_files
from daaf.engine import (
    FeatureExtractor,
    check_output_file,
    inference_argument_parser,
    inference_config,
    run_command_line,
)
from daaf.utils.file_io import atomic_write


def main(args):
    check_output_file(args.output, (".npz",))
    cfg = inference_config(args.config_file, args.opts)
    names = list_image_files(args.input)
    features = FeatureExtractor(cfg, num_workers=args.workers)(names, as_numpy=True)
    with atomic_write(args.output, "wb") as f:
        np.savez(f, features=features, file_names=np.array(names))
    print(f"Wrote {features.shape[0]} features of dimension {features.shape[1]} to {args.output}")


def parser():
    p = inference_argument_parser(__doc__)
    p.add_argument("--input", nargs="+", required=True, help="folders (searched recursively), globs or image files")
    p.add_argument("--output", default="features.npz", help="the .npz to write (default: features.npz)")
    p.add_workers_argument()
    return p


def cli() -> int:
    """The command line (``daaf-extract-features``, ``python -m daaf.tools.extract_features``, ``python tools/extract_features.py``); the exit code."""
    return run_command_line(main, parser)


if __name__ == "__main__":
    sys.exit(cli())
