"""ReIDEvaluator (detectron2's reset / process / evaluate): CMC, mAP and mINP of gathered
query and gallery embeddings, with the CMC plot, each query's results (per_query.npz) and, on
request, the ranked lists (ranks.npz) written beside."""

import logging
import os
from collections import OrderedDict
from typing import Optional, Sequence

import numpy as np
import torch

from daaf.config import configurable
from daaf.data.batch import ReIDBatch
from daaf.utils import comm
from daaf.utils.errors import UserError
from daaf.utils.file_io import PathManager, atomic_write

from .distance import compute_distance_chunks
from .per_query import PER_QUERY_FILE, save_per_query
from .rank import RankAccumulator
from .rerank import re_ranking_features

__all__ = ["DatasetEvaluator", "ReIDEvaluator", "print_csv_format", "top_k", "describe_model"]

logger = logging.getLogger(__name__)


class DatasetEvaluator:
    """detectron2's evaluator interface: reset(), process(inputs, outputs), evaluate() -> dict."""

    def reset(self):
        pass

    def process(self, inputs, outputs):
        pass

    def evaluate(self):
        pass


def describe_model(model, output_dir: str = "") -> str:
    """A short name of a model for plots and logs, e.g. "daaf_trinet_R18 (TriNetHead, ResNet-18 + HAB + PAB)":
    the run's folder name, then what the network says of itself (its ``describe()``; else its class)."""
    model = comm.unwrap_model(model)
    description = model.describe() if hasattr(model, "describe") else type(model).__name__
    run = os.path.basename(os.path.normpath(output_dir)) if output_dir else ""
    return f"{run} ({description})" if run else description


class ReIDEvaluator(DatasetEvaluator):
    """Collects embeddings of query + gallery (the first ``num_query`` items seen, in loader order,
    are queries), gathers them from every process and computes CMC / mAP / mINP.

    Args:
        num_query: number of queries at the start of the (global) item order.
        metric: "cosine" or "euclidean".
        rerank: apply k-reciprocal re-ranking with (k1, k2, lambda) = rerank_params.
        report_ranks: CMC ranks to report (Partial-REID / Partial-iLIDS: 1 and 3).
        output_dir: where the CMC plot (cmc.png) and, if ``save_ranks``, ranks.npz are written.
        device: where the distances, the top-k, the rank metrics and re-ranking's neighbour search
            and Jaccard term run, chunk by chunk ("cpu", "cuda"; MODEL.DEVICE).
    Returns (evaluate): {"Rank-1": %, ..., "mAP": %, "mINP": %} on the main process; {} elsewhere.
    """

    @configurable
    def __init__(
        self,
        num_query: int,
        *,
        metric: str = "cosine",
        rerank: bool = False,
        rerank_params: Sequence[float] = (20, 6, 0.3),
        max_rank: int = 50,
        report_ranks: Sequence[int] = (1, 5, 10),
        chunk_size: int = 512,
        device: str = "cpu",
        output_dir: Optional[str] = None,
        save_ranks: bool = False,
        dataset_name: str = "",
        model_name: str = "",
    ):
        self.num_query = num_query
        self.metric = metric
        self.rerank = rerank
        self.rerank_params = tuple(rerank_params)
        self.max_rank = max_rank
        self.report_ranks = tuple(report_ranks)
        self.chunk_size = chunk_size
        self.device = device
        self.output_dir = output_dir
        self.save_ranks = save_ranks
        self.dataset_name = dataset_name
        self.model_name = model_name
        self.reset()

    @classmethod
    def from_config(cls, cfg, num_query, dataset_name="", output_dir=None, report_ranks=(1, 5, 10)):
        return {
            "num_query": num_query,
            "metric": cfg.TEST.METRIC,
            "rerank": cfg.TEST.RERANK.ENABLED,
            "rerank_params": (cfg.TEST.RERANK.K1, cfg.TEST.RERANK.K2, cfg.TEST.RERANK.LAMBDA),
            "max_rank": cfg.TEST.MAX_RANK,
            "report_ranks": report_ranks,
            "chunk_size": cfg.TEST.CHUNK_SIZE,
            "device": cfg.MODEL.DEVICE,
            "output_dir": output_dir,
            "save_ranks": cfg.TEST.SAVE_RANKS,
            "dataset_name": dataset_name,
        }

    def curve_label(self) -> str:
        """What the CMC plot calls this evaluation: "<model> on <dataset>"."""
        return " on ".join(n for n in (self.model_name or "model", self.dataset_name) if n)

    def reset(self):
        self._features, self._pids, self._camids, self._file_names = [], [], [], []

    def process(self, inputs: ReIDBatch, outputs: torch.Tensor):
        """inputs: the batch (its pids, camids and file names are used); outputs: (B, D) embeddings."""
        self._features.append(outputs.detach().float().cpu())
        self._pids.append(inputs.pids.cpu().numpy())
        self._camids.append(inputs.camids.cpu().numpy())
        self._file_names.extend(inputs.file_names)

    def _gather(self):
        parts = comm.gather((self._features, self._pids, self._camids, self._file_names))
        if not comm.is_main_process():
            return None
        features = torch.cat([f for p in parts for f in p[0]])
        pids = np.concatenate([x for p in parts for x in p[1]])
        camids = np.concatenate([x for p in parts for x in p[2]])
        names = [n for p in parts for n in p[3]]
        return features, pids, camids, names

    def evaluate(self):
        comm.synchronize()
        gathered = self._gather()
        if gathered is None:
            return {}
        features, pids, camids, names = gathered
        q = self.num_query
        if not 0 < q < len(features):
            raise UserError(f"{self.dataset_name}: {q} queries among {len(features)} items: an evaluation needs queries and a gallery")
        qf, gf = features[:q], features[q:]
        q_pids, g_pids, q_camids, g_camids = pids[:q], pids[q:], camids[:q], camids[q:]
        acc = RankAccumulator(self.max_rank)
        top_k_parts = []
        for dist, sl in self._distance_chunks(qf, gf):
            acc.add(dist, q_pids[sl], g_pids, q_camids[sl], g_camids)
            if self.save_ranks:
                top_k_parts.append(top_k(dist, self.max_rank))
        cmc, mAP, mINP = acc.result()
        results = OrderedDict((f"Rank-{r}", float(cmc[r - 1]) * 100) for r in self.report_ranks if r <= len(cmc))
        results["mAP"] = mAP * 100
        results["mINP"] = mINP * 100
        if self.output_dir and comm.is_main_process():
            per_query = {
                "query_ap": np.asarray(acc.query_ap, dtype=np.float32),
                "query_inp": np.asarray(acc.query_inp, dtype=np.float32),
                "query_first_match": np.asarray(acc.query_first_match, dtype=np.int64),
            }
            self._write_outputs(cmc, top_k_parts, names, pids, camids, per_query)
        return results

    def _distance_chunks(self, qf, gf):
        """(chunk, G) distances and the slice of queries they belong to: NumPy arrays on the CPU,
        tensors on an accelerator (ranked there)."""
        on_device = torch.device(self.device).type != "cpu"
        if not self.rerank:  # the features on the device once; the distances stay there
            yield from compute_distance_chunks(
                qf.to(self.device), gf.to(self.device), self.metric, self.chunk_size, keep_on_device=on_device
            )
            return
        k1, k2, lam = self.rerank_params
        logger.info(f"Re-ranking {len(qf)} x {len(gf)} (k1={k1}, k2={k2}, lambda={lam})")
        dist = re_ranking_features(qf, gf, metric=self.metric, k1=int(k1), k2=int(k2), lambda_value=float(lam), device=self.device)
        for start in range(0, len(dist), self.chunk_size):
            block = dist[start : start + self.chunk_size]
            yield (torch.from_numpy(block).to(self.device) if on_device else block), slice(start, start + self.chunk_size)

    def _write_outputs(self, cmc, top_k_parts, names, pids, camids, per_query):
        from daaf.utils.visualization import plot_cmc

        PathManager.mkdirs(self.output_dir)
        plot_cmc({self.curve_label(): cmc}, os.path.join(self.output_dir, "cmc.png"))
        q = self.num_query
        # a few numbers per query, always: any two runs on this test split can be compared later
        save_per_query(
            os.path.join(self.output_dir, PER_QUERY_FILE),
            query_files=np.array(names[:q]),
            query_pids=pids[:q],
            query_camids=camids[:q],
            **per_query,
        )
        if self.save_ranks:
            indices = np.concatenate([t[0] for t in top_k_parts])
            distances = np.concatenate([t[1] for t in top_k_parts])
            with atomic_write(os.path.join(self.output_dir, "ranks.npz"), "wb") as f:
                np.savez_compressed(
                    f,
                    indices=indices,
                    distances=distances,
                    query_files=np.array(names[:q]),
                    gallery_files=np.array(names[q:]),
                    query_pids=pids[:q],
                    gallery_pids=pids[q:],
                    query_camids=camids[:q],
                    gallery_camids=camids[q:],
                    cmc=cmc,
                    **per_query,
                )


def top_k(dist, k: int):
    """(indices, distances), NumPy arrays each (Q, min(k, G)), of the k smallest of each row of
    (Q, G) ``dist`` (an array, or a tensor: selected where it lies), smallest first."""
    k = min(k, dist.shape[1])
    if isinstance(dist, torch.Tensor):
        values, indices = torch.topk(dist, k, dim=1, largest=False, sorted=True)
        return indices.cpu().numpy(), values.cpu().numpy()
    part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    part_d = np.take_along_axis(dist, part, axis=1)
    order = np.argsort(part_d, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_d, order, axis=1)


def print_csv_format(results: dict) -> str:
    """A small table of metric: value (%) lines, in the order the evaluator gave them."""
    names = list(results)
    header = " | ".join(f"{n:>7}" for n in names)
    values = " | ".join(f"{results[n]:7.2f}" for n in names)
    return f"{header}\n{values}"
