"""Command-line arguments of the tools: detectron2's training flags (the design of
``default_argument_parser`` follows detectron2's), the inference tools' parser
(--config-file, the tool's options, then KEY VALUE overrides) and argparse types with one-line
errors."""

import argparse
import os
import re
import sys
from typing import Sequence

from daaf.utils.errors import UserError

__all__ = [
    "default_argument_parser",
    "InferenceArgumentParser",
    "inference_argument_parser",
    "positive_int",
    "non_negative_int",
    "finite_float",
    "check_output_file",
]


def default_argument_parser(epilog: str = None) -> argparse.ArgumentParser:
    """detectron2's training flags: --config-file --resume --eval-only --num-gpus --num-machines
    --machine-rank --dist-url and trailing ``KEY VALUE`` config overrides."""
    parser = argparse.ArgumentParser(
        epilog=epilog
        or f"""
Examples:

Train on one machine (one process per GPU, or CPU processes with gloo when there is no GPU):
    $ {sys.argv[0]} --num-gpus 2 --config-file cfg.yaml

Make the person labels (masks + keypoints) DAAF trains on, with detectron2's models:
    $ {sys.argv[0]} --config-file configs/PseudoLabel/Market1501.yaml --pseudo-label

Change some config options:
    $ {sys.argv[0]} --config-file cfg.yaml MODEL.WEIGHTS /path/to/weight.pth SOLVER.BASE_LR 0.001

Run on several machines:
    (machine0)$ {sys.argv[0]} --machine-rank 0 --num-machines 2 --dist-url <URL> [--other-flags]
    (machine1)$ {sys.argv[0]} --machine-rank 1 --num-machines 2 --dist-url <URL> [--other-flags]
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="the YAML config of the run")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUTPUT_DIR/last_checkpoint (model, optimizer, scheduler, iteration) if it exists",
    )
    parser.add_argument(
        "--start-over",
        action="store_true",
        help="train anew in an OUTPUT_DIR that holds an earlier run: its files move into OUTPUT_DIR/replaced-<time>/",
    )
    parser.add_argument("--eval-only", action="store_true", help="only evaluate MODEL.WEIGHTS (or the last checkpoint with --resume)")
    parser.add_argument(
        "--pseudo-label",
        action="store_true",
        help="only label every image of the configured datasets with PSEUDO_LABEL.NAME (person mask + 17 keypoints)",
    )
    parser.add_argument(
        "--num-gpus", type=positive_int, default=1, help="processes per machine (CPU processes with gloo when there is no CUDA)"
    )
    parser.add_argument("--num-machines", type=positive_int, default=1, help="how many machines the job runs on")
    parser.add_argument("--machine-rank", type=non_negative_int, default=0, help="this machine's index, 0 to --num-machines - 1")
    # A port derived from the user id, so several users on one machine rarely collide.
    port = 2**15 + 2**14 + hash(os.getuid() if sys.platform != "win32" else 1) % 2**14
    parser.add_argument(
        "--dist-url",
        default=f"tcp://127.0.0.1:{port}",
        help="initialization URL for torch.distributed ('auto' picks a free local port). "
        "See https://pytorch.org/docs/stable/distributed.html",
    )
    parser.add_argument(
        "opts",
        help="Modify config options at the end of the command: space-separated 'PATH.KEY VALUE' pairs.",
        default=None,
        nargs=argparse.REMAINDER,
    )
    return parser


_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


class InferenceArgumentParser(argparse.ArgumentParser):
    """argparse for the inference tools: --config-file plus the tool's options, then trailing
    ``KEY VALUE`` config overrides (MODEL.WEIGHTS names the checkpoint). The overrides start at
    the first config key (e.g. MODEL.WEIGHTS), so options that take several values (--input a b)
    may come right before them."""

    def __init__(self, description: str):
        super().__init__(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        self.add_argument("--config-file", required=True, metavar="FILE", help="the config the model was trained with")
        self.epilog = "Config overrides go last, as KEY VALUE pairs: e.g. MODEL.WEIGHTS output/run/model_final.pth"

    def parse_args(self, args=None, namespace=None):
        argv = list(sys.argv[1:] if args is None else args)
        split = next((i for i, a in enumerate(argv) if _CONFIG_KEY.match(a)), len(argv))
        parsed = super().parse_args(argv[:split], namespace)
        parsed.opts = argv[split:]
        return parsed

    def add_workers_argument(self) -> "InferenceArgumentParser":
        """--workers: the image-reading processes of a tool that embeds crops (FeatureExtractor's num_workers)."""
        self.add_argument("--workers", type=non_negative_int, default=2, help="image-reading processes")
        return self


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse names the flag in its one-line error)."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0, "an integer >= 0")


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def check_output_file(path: str, extensions: Sequence[str], flag: str = "--output") -> None:
    """UserError (one line) unless ``path`` can become a file with one of ``extensions`` (".npz"):
    checked before a tool's work, not after it."""
    if os.path.isdir(path):
        raise UserError(f"{flag} {path}: is a folder; give a file path ending in {' or '.join(extensions)}")
    if not path.lower().endswith(tuple(extensions)):
        raise UserError(f"{flag} {path}: expected a file name ending in {' or '.join(extensions)}")


def inference_argument_parser(description: str) -> InferenceArgumentParser:
    """The parser every inference tool starts from (see :class:`InferenceArgumentParser`)."""
    return InferenceArgumentParser(description)
