"""The rows of the requested paper tables, their base rows, and the runs they need."""

import os
from typing import Dict, List, Optional, Sequence, Tuple

from paper_tables import ROWS, PaperRow, find_row

from daaf.utils.errors import UserError

from .runs import REPO, Run

__all__ = ["SYNTHETIC_CONFIG", "SYNTHETIC_TABLES", "Plan", "synthetic_opts", "synthetic_name", "slug"]

SYNTHETIC_CONFIG = "configs/Synthetic/trinet_R18.yaml"
SYNTHETIC_TABLES = ("4", "5", "6", "7")


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
        """``row``'s ``metric`` on ``dataset`` with ``seed``; None when that run is not done (or
        the row's model is not built here)."""
        if not row.built:
            return None
        run = self.run(row, seed)
        return run.results()[dataset][metric] if run.done() else None

    def per_query(self, row: PaperRow, dataset: str) -> Dict[int, dict]:
        """{seed: per-query results on ``dataset``} of the seeds whose run of ``row`` is done."""
        if not row.built:
            return {}
        return {s: self.run(row, s).per_query(dataset) for s in self.seeds if self.run(row, s).done()}

    def _config(self, row: PaperRow) -> str:
        return os.path.join(REPO, SYNTHETIC_CONFIG if self.synthetic else row.config)

    def _opts(self, row: PaperRow, seed: int) -> Tuple[str, ...]:
        extra = synthetic_opts(row) if self.synthetic else ()
        return (*extra, *row.overrides, "SEED", str(seed), *self.opts)

    def all_runs(self) -> List[Run]:
        """Every run, those a run evaluates first, each once."""
        runs = []
        for row in (r for r in self.rows if r.built):
            for seed in self.seeds:
                run = self.run(row, seed)
                for r in ([run.evaluates] if run.evaluates else []) + [run]:
                    if r not in runs:
                        runs.append(r)
        return runs
