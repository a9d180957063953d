"""Helpers for torch.distributed that also work when it is not initialised (one process)."""

import functools

import numpy as np
import torch
import torch.distributed as dist

_LOCAL_PROCESS_GROUP = None


def get_world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    if not dist.is_available() or not dist.is_initialized():
        return 1
    return dist.get_world_size()


def get_rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    if not dist.is_available() or not dist.is_initialized():
        return 0
    return dist.get_rank()


def create_local_process_group(num_workers_per_machine: int) -> None:
    """Create the group of processes on this machine (needed for the local rank/size)."""
    global _LOCAL_PROCESS_GROUP
    assert _LOCAL_PROCESS_GROUP is None
    assert get_world_size() % num_workers_per_machine == 0
    num_machines = get_world_size() // num_workers_per_machine
    machine_rank = get_rank() // num_workers_per_machine
    for i in range(num_machines):
        ranks = list(range(i * num_workers_per_machine, (i + 1) * num_workers_per_machine))
        group = dist.new_group(ranks)
        if i == machine_rank:
            _LOCAL_PROCESS_GROUP = group


def destroy_process_groups(wait_for_peers: bool = True) -> None:
    """Tear down all process groups and forget the cached ones; first wait for every rank
    unless ``wait_for_peers`` is False (after an error, when peers may be gone).

    The barrier keeps a rank that finished early (e.g. a non-destination rank of ``gather``) from
    closing its connections while a peer still uses them; dropping the cached groups lets their
    C++ objects go before interpreter shutdown (gloo aborts the process when its threads are
    destroyed that late)."""
    global _LOCAL_PROCESS_GROUP
    if not dist.is_available() or not dist.is_initialized():
        return
    if wait_for_peers:
        synchronize()
    dist.destroy_process_group()
    _LOCAL_PROCESS_GROUP = None
    _cpu_group.cache_clear()


def get_local_rank() -> int:
    """Rank of this process among those of its machine."""
    if get_world_size() == 1:
        return 0
    if _LOCAL_PROCESS_GROUP is None:  # e.g. under torchrun without launch()
        import os

        return int(os.environ.get("LOCAL_RANK", 0))
    return dist.get_rank(group=_LOCAL_PROCESS_GROUP)


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op in one process."""
    if get_world_size() == 1:
        return
    if dist.get_backend() == dist.Backend.NCCL and torch.cuda.is_available():
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@functools.lru_cache()
def _cpu_group():
    """A gloo group for gathering arbitrary Python objects (NCCL only moves CUDA tensors)."""
    if dist.get_backend() == "nccl":
        return dist.new_group(backend="gloo")
    return dist.group.WORLD


def all_gather(data, group=None) -> list:
    """Gather any picklable object from every rank; returns a list indexed by rank."""
    if get_world_size() == 1:
        return [data]
    group = group or _cpu_group()
    output = [None] * dist.get_world_size(group)
    dist.all_gather_object(output, data, group=group)
    return output


def gather(data, dst: int = 0, group=None) -> list:
    """Gather any picklable object on rank ``dst``; other ranks get an empty list."""
    if get_world_size() == 1:
        return [data]
    group = group or _cpu_group()
    if dist.get_rank(group=group) == dst:
        output = [None] * dist.get_world_size(group)
        dist.gather_object(data, output, dst=dst, group=group)
        return output
    dist.gather_object(data, None, dst=dst, group=group)
    return []


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient of the gathered tensor and gives each
    rank the part of its own input."""

    @staticmethod
    def forward(ctx, tensor):
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad.chunk(dist.get_world_size())[dist.get_rank()]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """The (N, ...) tensors of every rank concatenated in rank order, (world_size * N, ...); the
    gradient reaches each rank's own part. Every rank must give the same shape. Computing one loss
    of the whole gathered batch on every rank, with DistributedDataParallel averaging the
    parameter gradients, gives the gradient of that loss on one process holding the whole batch."""
    if get_world_size() == 1:
        return tensor
    return _AllGatherWithGrad.apply(tensor)


def shared_random_seed() -> int:
    """A random int that is the same on every rank (for samplers that must agree)."""
    seed = np.random.randint(2**31)
    return all_gather(seed)[0]


def unwrap_model(model):
    """The module inside a DistributedDataParallel (or DataParallel) wrapper; any other module as it is."""
    return model.module if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)) else model
