"""Start one process per device (GPU, or CPU process with gloo) and run ``main_func`` in each.

The design follows detectron2's ``detectron2.engine.launch`` (the same flags and process layout).

``--num-gpus N`` on a machine without CUDA starts N CPU processes that talk over gloo (detectron2
would fail there). Under ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK set), the process group
is initialised from the environment and ``main_func`` runs in the current process.
"""

import functools
import logging
import os
import signal
import socket
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from daaf.utils import comm
from daaf.utils.errors import is_full_disk

__all__ = ["launch", "launch_cli", "run_reporting_user_errors", "DEFAULT_TIMEOUT", "default_backend"]

DEFAULT_TIMEOUT = timedelta(minutes=30)


def default_backend() -> str:
    """NCCL when CUDA is available, else gloo."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launched_by_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def launch(
    main_func,
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str = None,
    args=(),
    timeout: timedelta = DEFAULT_TIMEOUT,
):
    """Run ``main_func(*args)`` in ``num_gpus_per_machine`` processes on each of ``num_machines``.

    Args:
        num_gpus_per_machine: processes on this machine (one per GPU; CPU processes without CUDA).
        machine_rank: index of this machine.
        dist_url: ``tcp://host:port`` of machine 0, or "auto" (single machine: a free local port).
    """
    if _launched_by_torchrun():
        _init_from_env(timeout)
        return _run_then_destroy_process_groups(main_func, args)

    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        return main_func(*args)

    if dist_url == "auto" or dist_url is None:
        if num_machines != 1:
            raise ValueError("--dist-url auto only works on one machine; give tcp://<machine-0 address>:<port>")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logging.getLogger(__name__).warning("file:// rendezvous across machines needs a shared filesystem")

    mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )


def _init_from_env(timeout: timedelta) -> None:
    backend = default_backend()
    local_rank = int(os.environ["LOCAL_RANK"])
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    comm.synchronize()


def _distributed_worker(local_rank, main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout):
    backend = default_backend()
    if backend == "nccl" and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(f"--num-gpus {num_gpus_per_machine} but only {torch.cuda.device_count()} CUDA devices are visible")
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    try:
        dist.init_process_group(backend=backend, init_method=dist_url, world_size=world_size, rank=global_rank, timeout=timeout)
    except Exception as e:
        logging.getLogger(__name__).error(f"The process group could not start at {dist_url}")
        raise e
    comm.create_local_process_group(num_gpus_per_machine)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    comm.synchronize()
    _run_then_destroy_process_groups(main_func, args)


def _run_then_destroy_process_groups(main_func, args):
    """``main_func(*args)``, then tear the process groups down on every way out."""
    try:
        result = main_func(*args)
    except BaseException:
        # Peers may be gone or stuck; a barrier here could hang until the timeout.
        comm.destroy_process_groups(wait_for_peers=False)
        raise
    comm.destroy_process_groups()
    return result


def run_command_line(main_func, parser) -> int:
    """A tool's command line: ``main_func`` of the arguments ``parser()`` parses from sys.argv, with
    :func:`run_reporting_user_errors`; the exit code."""
    return run_reporting_user_errors(main_func, parser().parse_args()) or 0


def run_reporting_user_errors(main_func, *args):
    """``main_func(*args)``; a UserError, or a full disk anywhere (a log or metrics line, a
    picture), becomes one ``error: ...`` line on stderr and exit code 2."""
    from daaf.utils.errors import UserError

    try:
        return main_func(*args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except OSError as e:
        if not is_full_disk(e):
            raise
        where = f" (writing {e.filename})" if e.filename else ""
        print(f"error: no space left on device{where}", file=sys.stderr, flush=True)
        sys.exit(2)


def launch_cli(main_func, args) -> int:
    """``launch`` for command-line tools: the parsed detectron2-style ``args`` choose the
    processes; a :class:`UserError` in any process is printed as one ``error: ...`` line and the
    exit code is 2 (no traceback). A process that dies otherwise (a signal, a crash) is named in
    one line with its rank and signal or exit code; the others are stopped, and the exit code is
    128 + the signal's number (as a shell reports it) or the process's own. Returns the exit code."""
    if not 0 <= args.machine_rank < args.num_machines:
        print(
            f"error: --machine-rank {args.machine_rank}: expected 0 to {args.num_machines - 1} (--num-machines {args.num_machines})",
            file=sys.stderr,
        )
        return 2
    try:
        launch(
            functools.partial(run_reporting_user_errors, main_func),
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    except SystemExit as e:
        return int(e.code or 0)
    except mp.ProcessExitedException as e:
        rank = args.machine_rank * args.num_gpus + e.error_index
        if e.signal_name:
            print(
                f"error: rank {rank} (pid {e.error_pid}) was killed by {e.signal_name}; the other processes were stopped", file=sys.stderr
            )
            return 128 + int(getattr(signal, e.signal_name, signal.SIGTERM))
        if e.exit_code != 2:  # 2: the process printed its own error line
            print(
                f"error: rank {rank} (pid {e.error_pid}) exited with code {e.exit_code}; the other processes were stopped", file=sys.stderr
            )
        return int(e.exit_code or 1)
    return 0
