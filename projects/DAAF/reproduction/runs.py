"""One training (or evaluation) of a config with a seed, checking its inputs, and making the
results of a list of them through tools/train_net.py."""

import functools
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from daaf.config import build_config, flatten_config
from daaf.data import PersonLabels, get_dataset, label_file_path, resolve_labels_dir
from daaf.data.datasets import register_custom_datasets
from daaf.evaluation import PER_QUERY_FILE, load_per_query
from daaf.modeling import model_input_fields
from daaf.utils.errors import UserError
from daaf.utils.file_io import atomic_write

__all__ = ["REPO", "Run", "check_inputs", "train_and_evaluate"]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


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

    def per_query_file(self, dataset: str) -> str:
        """Each query's results on ``dataset`` (what the paired comparisons resample)."""
        return os.path.join(self.output_dir, "inference", dataset, PER_QUERY_FILE)

    @property
    def request_file(self) -> str:
        """The effective config the folder's run was started with (written before it starts)."""
        return os.path.join(self.output_dir, "reproduce_request.yaml")

    @functools.cached_property
    def requested_config(self) -> str:
        """The effective config of this run (its config file, its options and its OUTPUT_DIR), as
        YAML; built once per Run (a plan keeps one Run per row and seed while it works)."""
        return build_config(self.config, [*self.opts, "OUTPUT_DIR", self.output_dir]).dump()

    def recorded_config(self) -> Optional[str]:
        if not os.path.isfile(self.request_file):
            return None
        with open(self.request_file) as f:
            return f.read()

    def check_same_settings(self) -> None:
        """A one-line UserError when the folder holds a run started with another effective config."""
        recorded, requested = self.recorded_config(), self.requested_config
        if recorded is None or recorded == requested:
            return
        old, new = flatten_config(yaml.safe_load(recorded)), flatten_config(yaml.safe_load(requested))
        changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        raise UserError(
            f"{self.output_dir}: holds a run made with other settings ({'; '.join(changed[:3])}); "
            "give another --output-dir, or remove that folder to run it again"
        )

    def record_request(self) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        with atomic_write(self.request_file, "w") as f:
            f.write(self.requested_config)

    def done(self) -> bool:
        """Its results and per-query results are there, newer than the model they are of, and made
        with this run's effective config (a run evaluated before per-query results were kept is
        evaluated again: :meth:`command`)."""
        model = self.evaluates.weights if self.evaluates else self.weights
        return (
            os.path.isfile(self.results_file)
            and os.path.isfile(model)
            and os.path.getmtime(self.results_file) >= os.path.getmtime(model)
            and all(os.path.isfile(self.per_query_file(d)) for d in self.results())
            and self.recorded_config() == self.requested_config
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

    def per_query(self, dataset: str) -> Dict[str, np.ndarray]:
        return load_per_query(self.per_query_file(dataset))


def check_inputs(runs: Sequence[Run]) -> None:
    """A one-line UserError for the first dataset folder or label file a run needs that is missing."""
    for run in runs:
        cfg = build_config(run.config, run.opts)
        register_custom_datasets(cfg.DATASETS.CUSTOM)
        for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST) if run.evaluates is None else cfg.DATASETS.TEST:
            get_dataset(name, cfg.DATASETS.ROOT, log=False)  # names the missing folder
        if run.evaluates is None and model_input_fields(cfg) & PersonLabels.FIELDS:
            for name in cfg.DATASETS.TRAIN:
                path = label_file_path(resolve_labels_dir(cfg), name, "train")
                if not os.path.isfile(path):
                    raise UserError(
                        f"label file not found: {path} (the DAAF rows train on person labels); make it with: "
                        f"python tools/train_net.py --config-file {os.path.relpath(run.config, REPO)} --pseudo-label"
                    )


def train_and_evaluate(runs: Sequence[Run], num_gpus: int, output_dir: str, verbose: bool) -> None:
    """Check the inputs of the runs not done (one error line), then make each one's results, in order."""
    todo = [r for r in runs if not r.done()]
    for run in todo:  # a folder of a run with other settings is refused before anything runs
        run.check_same_settings()
    check_inputs(todo)
    start = time.time()
    for i, run in enumerate(runs, 1):
        what = "evaluate" if run.evaluates else "train"
        if run.done():
            print(f"[{i}/{len(runs)}] done before: {os.path.relpath(run.output_dir, output_dir)}", flush=True)
            continue
        print(f"[{i}/{len(runs)}] {what} {os.path.relpath(run.output_dir, output_dir)} ({time.time() - start:.0f} s so far)", flush=True)
        command = run.command(num_gpus)
        run.record_request()
        code = subprocess.call(command, cwd=REPO, stdout=None if verbose else subprocess.DEVNULL)
        if code != 0 or not run.done():
            raise UserError(f"{shlex.join(command)} failed (exit {code}); its log: {os.path.join(run.output_dir, 'log.txt')}")
