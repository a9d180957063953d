"""Train and evaluate ReID models (TriNet / BoT and their DAAF versions) from a YAML config, and
make the person labels DAAF trains on.

    python tools/train_net.py --config-file configs/Synthetic/trinet_R18.yaml
    python tools/train_net.py --config-file cfg.yaml --num-gpus 2            # 2 processes (gloo on CPU)
    python tools/train_net.py --config-file cfg.yaml --resume                # continue from last_checkpoint
    python tools/train_net.py --config-file cfg.yaml --eval-only MODEL.WEIGHTS model_final.pth
    python tools/train_net.py --config-file configs/PseudoLabel/Market1501.yaml --pseudo-label [--num-gpus N]
"""

import logging
import os
import sys

from daaf.config import build_config
from daaf.data import PersonLabels
from daaf.engine import DefaultTrainer, default_argument_parser, default_setup, launch_cli
from daaf.engine.run_folder import release_run_folder
from daaf.modeling import model_input_fields
from daaf.pseudo_label.runner import pseudo_label_from_config
from daaf.pseudo_label.train_labels import ensure_train_labels
from daaf.utils import comm


def setup(args):
    """The run's config (:func:`daaf.config.build_config` of --config-file and the KEY VALUE
    overrides, frozen); logging and the output folder."""
    cfg = build_config(args.config_file, args.opts)
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    try:
        return run(cfg, args)
    finally:
        release_run_folder(cfg.OUTPUT_DIR)


def run(cfg, args):
    """The job ``args`` asks for, with the config ``cfg``."""
    if args.pseudo_label:
        return pseudo_label_from_config(cfg)
    if args.eval_only:
        model = DefaultTrainer.build_model(cfg)
        DefaultTrainer.load_for_evaluation(cfg, model, resume=args.resume)
        return DefaultTrainer.test(cfg, model)
    if model_input_fields(cfg) & PersonLabels.FIELDS:
        ensure_train_labels(cfg, config_file=args.config_file, opts=args.opts or ())
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    results = trainer.train()
    if comm.is_main_process():
        logging.getLogger("daaf").info(f"Training finished; outputs in {os.path.abspath(cfg.OUTPUT_DIR)}")
    return results


def cli() -> int:
    """The command line (``daaf-train``, ``python -m daaf.tools.train_net``, ``python tools/train_net.py``); the exit code."""
    args = default_argument_parser().parse_args()
    return launch_cli(main, args)


if __name__ == "__main__":
    sys.exit(cli())
