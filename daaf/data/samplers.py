"""Samplers: the infinite P x K identity sampler for training, the batch sampler that makes a
training stream resumable at any batch, and the sharded inference sampler."""

import itertools
from collections import defaultdict
from typing import Iterator, List, Optional, Sequence

import numpy as np
from torch.utils.data import Sampler

from daaf.utils import comm
from daaf.utils.errors import ConfigError

__all__ = ["PKSampler", "SeededBatchSampler", "InferenceSampler"]


class PKSampler(Sampler):
    """Infinite stream of dataset indices forming batches of P identities x K images.

    One "epoch" visits every image once: each identity's images are shuffled and cut into
    chunks of K (the last chunk, and identities with fewer than K images, are filled by
    sampling with replacement); global batches of P distinct identities are drawn until fewer
    than P identities have chunks left. With several processes, each global batch of
    ``batch_size`` is split into contiguous per-rank parts of ``batch_size / world_size``, so the
    ranks never see the same chunk. Deterministic from ``seed`` (shared by all ranks).

    Yields the indices of THIS rank; use it with ``batch_size = batch_size // world_size``. With
    ``start_batch`` s the stream starts at global batch s: it is what the stream from batch 0
    yields after its first s batches (a resumed run goes on where the interrupted one was).
    """

    start_batch = 0

    def __init__(
        self, pids: Sequence[int], batch_size: int, num_instances: int, seed: Optional[int] = None, rank: int = None, world_size: int = None
    ):
        self.rank = comm.get_rank() if rank is None else rank
        self.world_size = comm.get_world_size() if world_size is None else world_size
        if batch_size % (num_instances * self.world_size) != 0:
            raise ConfigError(
                f"SOLVER.IMS_PER_BATCH ({batch_size}) must be divisible by DATALOADER.NUM_INSTANCE ({num_instances}) "
                f"x number of processes ({self.world_size})"
            )
        self.num_pids_per_batch = batch_size // num_instances
        self.num_instances = num_instances
        self.index_by_pid = defaultdict(list)
        for index, pid in enumerate(pids):
            self.index_by_pid[pid].append(index)
        self.pids = sorted(self.index_by_pid)
        self.local_pids_per_batch = self.num_pids_per_batch // self.world_size
        if self.local_pids_per_batch < 2:
            # hard-example mining inside a process needs a second identity for its negatives; with
            # one, the triplet loss is silently 0
            raise ConfigError(
                f"SOLVER.IMS_PER_BATCH {batch_size} / DATALOADER.NUM_INSTANCE {num_instances} / {self.world_size} process(es) gives "
                f"{self.local_pids_per_batch} identity per process; the triplet loss needs at least 2 "
                f"(IMS_PER_BATCH >= {2 * num_instances * self.world_size})"
            )
        if len(self.pids) < self.num_pids_per_batch:
            raise ConfigError(
                f"a batch needs {self.num_pids_per_batch} identities (IMS_PER_BATCH / NUM_INSTANCE) but the training set has {len(self.pids)}"
            )
        self.seed = int(comm.shared_random_seed() if seed is None else seed)

    @property
    def local_batch_size(self) -> int:
        """Indices per batch of this rank."""
        return self.local_pids_per_batch * self.num_instances

    def __iter__(self) -> Iterator[int]:
        start = self.rank * self.local_pids_per_batch
        global_batches = self._infinite_global_batches()
        for _ in range(self.start_batch):
            next(global_batches)
        for global_batch in global_batches:
            for chunk in global_batch[start : start + self.local_pids_per_batch]:
                yield from chunk

    def _infinite_global_batches(self) -> Iterator[List[List[int]]]:
        rng = np.random.default_rng(self.seed)
        while True:
            yield from self._epoch(rng)

    def _epoch(self, rng) -> Iterator[List[List[int]]]:
        k = self.num_instances
        chunks = {}
        for pid in self.pids:
            indices = list(rng.permutation(self.index_by_pid[pid]))
            if len(indices) % k:
                indices += list(rng.choice(self.index_by_pid[pid], size=k - len(indices) % k, replace=True))
            chunks[pid] = [[int(i) for i in indices[j : j + k]] for j in range(0, len(indices), k)]
        available = list(self.pids)
        while len(available) >= self.num_pids_per_batch:
            chosen = rng.choice(len(available), size=self.num_pids_per_batch, replace=False)
            batch_pids = [available[i] for i in chosen]
            yield [chunks[pid].pop(0) for pid in batch_pids]
            available = [pid for pid in available if chunks[pid]]


class SeededBatchSampler(Sampler):
    """Batches of a :class:`PKSampler`'s indices, each index paired with a seed for its random
    augmentation: ``[(index, seed), ...]`` (``MappedDataset`` seeds NumPy's and Python's RNGs with
    it before mapping the item). A seed depends only on (sampler seed, rank, batch number, position
    in the batch), so an item is augmented the same whichever loader worker maps it, and a stream
    resumed at batch s (:meth:`resume`) is exactly the uninterrupted stream from batch s on: with
    the model, optimizer and scheduler restored, a resumed run ends where an uninterrupted one does.
    """

    def __init__(self, sampler: PKSampler):
        self.sampler = sampler
        self.batch_size = sampler.local_batch_size

    @property
    def seed(self) -> int:
        return self.sampler.seed

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the stream's seed (drawn at random when SEED < 0)."""
        return {"seed": int(self.sampler.seed)}

    def resume(self, state: dict, start_batch: int) -> None:
        """Go on at batch ``start_batch`` of the stream ``state`` (a :meth:`state_dict`) names."""
        self.sampler.seed = int(state["seed"])
        self.sampler.start_batch = int(start_batch)

    def __iter__(self) -> Iterator[List[tuple]]:
        indices = iter(self.sampler)
        for batch in itertools.count(self.sampler.start_batch):
            seeds = np.random.SeedSequence([self.sampler.seed, self.sampler.rank, batch]).generate_state(self.batch_size)
            yield [(next(indices), int(seed)) for seed in seeds]


class InferenceSampler(Sampler):
    """Indices 0..size-1 split into contiguous, nearly equal parts, one per rank (each index once)."""

    def __init__(self, size: int, rank: int = None, world_size: int = None):
        rank = comm.get_rank() if rank is None else rank
        world_size = comm.get_world_size() if world_size is None else world_size
        shard = size // world_size + int(size % world_size > 0)
        self._local_indices = range(min(rank * shard, size), min((rank + 1) * shard, size))

    def __iter__(self):
        yield from self._local_indices

    def __len__(self):
        return len(self._local_indices)
