import glob
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from daaf.engine import DefaultTrainer, default_argument_parser, hooks, launch, launch_cli
from daaf.solver import build_lr_scheduler
from daaf.utils.checkpoint import DAAFCheckpointer

import toy_components  # noqa: F401  (registers ToyReIDNet)
from conftest import REPO, TESTS, child_pids, is_running, key_values

TOY_MODULE = os.path.join(TESTS, "toy_components.py")


def toy_cfg(cfg, **extra):
    cfg = cfg.clone()
    cfg.merge_from_list(["MODEL.META_ARCHITECTURE", "ToyReIDNet", "DATASETS.TEST", "()", "IMPORTS", f"['{TOY_MODULE}']"])
    for key, value in extra.items():
        cfg.merge_from_list([key, str(value)])
    return cfg


def read_metrics(output_dir, training_only=True):
    """metrics.json lines; by default those of training iterations (without the final line that
    holds the training time and any final evaluation, written at iteration MAX_ITER)."""
    with open(os.path.join(output_dir, "metrics.json")) as f:
        lines = [json.loads(line) for line in f]
    return [m for m in lines if "total_loss" in m] if training_only else lines


def test_tiny_training_run_writes_metrics_tensorboard_and_checkpoints(tiny_cfg):
    cfg = toy_cfg(tiny_cfg, **{"SOLVER.MAX_ITER": 6, "SOLVER.CHECKPOINT_PERIOD": 3, "LOG_PERIOD": 2})
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    out = cfg.OUTPUT_DIR
    metrics = read_metrics(out)
    assert [m["iteration"] for m in metrics] == [1, 3, 5]
    final = read_metrics(out, training_only=False)[-1]
    assert final["iteration"] == 6 and 0 < final["train_time_s"] < 600
    assert all({"total_loss", "loss_toy", "loss_bias", "lr"} <= set(m) for m in metrics)
    assert metrics[-1]["total_loss"] < metrics[0]["total_loss"]  # Adam moves the toy weights toward 1
    assert glob.glob(os.path.join(out, "events.out.tfevents.*"))
    assert {"last_checkpoint", "metrics.json", "model_0000002.pth", "model_final.pth"} <= set(os.listdir(out))
    assert "model_0000005.pth" not in os.listdir(out)  # the last iteration is saved once, as model_final
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read() == "model_final.pth"
    state = torch.load(os.path.join(out, "model_final.pth"), weights_only=False)
    assert state["iteration"] == 5 and "optimizer" in state["trainer"]["_trainer"]
    assert not glob.glob(os.path.join(out, "*.tmp"))


def test_non_finite_loss_raises_with_iteration_and_terms(tiny_cfg, monkeypatch):
    monkeypatch.setenv("TOY_NAN_AT", "3")
    trainer = DefaultTrainer(toy_cfg(tiny_cfg, **{"SOLVER.MAX_ITER": 6}))
    with pytest.raises(FloatingPointError) as info:
        trainer.train()
    message = str(info.value)
    assert "iteration 3" in message and "loss_toy=nan" in message and "loss_bias=" in message


def test_resume_restores_model_optimizer_scheduler_and_iteration(tiny_cfg, tmp_path):
    extra = {
        "SOLVER.MAX_ITER": 8,
        "SOLVER.CHECKPOINT_PERIOD": 4,
        "SOLVER.LR_SCHEDULER_NAME": "WarmupMultiStepLR",
        "SOLVER.STEPS": "(2, 6)",
        "SOLVER.GAMMA": 0.5,
        "SOLVER.BASE_LR": 0.05,
    }
    straight = DefaultTrainer(toy_cfg(tiny_cfg, **extra, OUTPUT_DIR=tmp_path / "straight"))
    straight.train()

    interrupted_cfg = toy_cfg(tiny_cfg, **extra, OUTPUT_DIR=tmp_path / "interrupted")
    crashing = DefaultTrainer(interrupted_cfg)

    class CrashAfterStep5(hooks.HookBase):
        def after_step(self):
            if self.trainer.iter == 5:
                raise RuntimeError("simulated crash")

    crashing.register_hooks([CrashAfterStep5()])
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.train()  # the checkpoint of iteration 3 is the last one written

    resumed = DefaultTrainer(interrupted_cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 4
    resumed.train()
    assert torch.equal(straight.model.fc.weight, resumed.model.fc.weight)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(straight.optimizer.param_groups[0]["lr"])
    assert resumed.scheduler.last_epoch == straight.scheduler.last_epoch == 8


def test_resuming_a_finished_run_trains_and_writes_nothing_and_says_so(tiny_cfg, tmp_path, caplog):
    import logging

    cfg = toy_cfg(tiny_cfg, **{"SOLVER.MAX_ITER": 4, "OUTPUT_DIR": tmp_path / "run"})
    DefaultTrainer(cfg).train()
    metrics = (tmp_path / "run" / "metrics.json").read_bytes()
    final = (tmp_path / "run" / "model_final.pth").read_bytes()
    (tmp_path / "run" / "config.yaml").write_text("the config the run was trained with\n")
    files = sorted(os.listdir(tmp_path / "run"))
    daaf_logger = logging.getLogger("daaf")  # does not propagate once a run has set up logging
    daaf_logger.addHandler(caplog.handler)
    try:
        for max_iter, message in (
            (4, "Training already finished (iteration 3 of SOLVER.MAX_ITER 4): nothing to do"),
            (2, "The checkpoint is at iteration 3, past SOLVER.MAX_ITER 2: nothing to train"),
        ):
            resumed = DefaultTrainer(toy_cfg(cfg, **{"SOLVER.MAX_ITER": max_iter}))
            resumed.resume_or_load(resume=True)
            assert resumed.train() is None
            assert message in caplog.text
    finally:
        daaf_logger.removeHandler(caplog.handler)
    assert (tmp_path / "run" / "metrics.json").read_bytes() == metrics  # no iteration 4, no new timing line
    assert (tmp_path / "run" / "config.yaml").read_text() == "the config the run was trained with\n"
    assert sorted(os.listdir(tmp_path / "run")) == files  # no new TensorBoard file, nothing else
    assert (tmp_path / "run" / "model_final.pth").read_bytes() == final


def test_eval_only_keeps_the_runs_config_and_writes_its_own_beside_its_results(tiny_cfg, tmp_path):
    import argparse

    from daaf.engine import default_setup

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("the config the run was trained with\n")
    cfg = toy_cfg(tiny_cfg, **{"OUTPUT_DIR": run, "MODEL.WEIGHTS": run / "model_final.pth"})
    default_setup(cfg, argparse.Namespace(config_file="", eval_only=True))
    assert (run / "config.yaml").read_text() == "the config the run was trained with\n"
    assert f"WEIGHTS: {run / 'model_final.pth'}" in (run / "inference" / "config.yaml").read_text()


def test_kill_9_mid_run_then_resume_ends_with_the_weights_of_the_uninterrupted_run(tiny_cfg, tmp_path):
    """A real model (ResNet-18 TriNet, 64x32, flip + pad-and-crop + random erasing) trained with 2
    loader workers, killed with SIGKILL mid-iteration and resumed, ends bit-identical to a run that
    was never interrupted; its loader workers die with it; metrics.json keeps one line per iteration
    and the partial files of the killed write are swept."""

    def command(out, *flags):
        opts = {
            "OUTPUT_DIR": out, "MODEL.DEVICE": "cpu", "MODEL.BACKBONE.DEPTH": 18, "MODEL.BACKBONE.PRETRAIN": False,
            "MODEL.HEADS.MID_DIM": 64, "MODEL.HEADS.EMBEDDING_DIM": 16, "DATASETS.ROOT": tiny_cfg.DATASETS.ROOT,
            "DATASETS.TRAIN": "('SyntheticPersons',)", "DATASETS.TEST": "()", "INPUT.SIZE_TRAIN": "[64, 32]",
            "INPUT.FLIP.ENABLED": True, "INPUT.PADDING.ENABLED": True, "INPUT.PADDING.SIZE": 4, "INPUT.REA.ENABLED": True,
            "DATALOADER.NUM_WORKERS": 2, "SOLVER.IMS_PER_BATCH": 8, "SOLVER.MAX_ITER": 8, "SOLVER.CHECKPOINT_PERIOD": 3,
            "LOG_PERIOD": 1, "SEED": 0,
        }  # fmt: skip
        return [sys.executable, os.path.join(REPO, "tools", "train_net.py"), *flags] + [str(x) for kv in opts.items() for x in kv]

    uninterrupted = subprocess.Popen(command(tmp_path / "uninterrupted"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out = tmp_path / "killed"
    proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    tag = out / "last_checkpoint"

    # The tag is written after the checkpoint's rename: wait for the tag, which is what resume reads.
    def tagged_iteration():
        name = tag.read_text() if tag.exists() else ""
        return int(name[6:13]) if name.startswith("model_0") else -1

    while tagged_iteration() < 2:
        assert proc.poll() is None and time.time() < deadline, "training ended before its second checkpoint"
        time.sleep(0.01)
    workers = child_pids(proc.pid)
    assert len(workers) >= 2  # the loader workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while any(is_running(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(is_running(w) for w in workers), "loader workers outlived the killed trainer"
    assert not (out / "model_final.pth").exists()
    logged_before = [m["iteration"] for m in read_metrics(out)]
    stale = out / ".model_0000005.pth.a1b2c3d4.tmp"  # as atomic_write leaves it when killed mid-write
    stale.write_bytes(b"partial checkpoint")

    resumed = subprocess.run(command(out, "--resume"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()[-2000:]
    log = (out / "log.txt").read_text()
    start_iters = [int(line.rsplit(" ", 1)[-1]) for line in log.splitlines() if "Training begins at iteration" in line]
    assert start_iters[0] == 0 and start_iters[-1] >= 3  # resumed after a checkpoint, not from 0
    assert f"Data stream resumed at batch {start_iters[-1]}" in log
    if platform.libc_ver()[0] == "glibc":  # default_setup has every training keep freed CPU memory
        assert log.count("CPU memory: freed memory is kept for reuse") == 2
    final = torch.load(out / "model_final.pth", weights_only=True)
    reference = torch.load(tmp_path / "uninterrupted" / "model_final.pth", weights_only=True)
    assert final["iteration"] == reference["iteration"] == 7
    assert final["model"].keys() == reference["model"].keys()
    different = [k for k, v in reference["model"].items() if not torch.equal(final["model"][k], v)]
    assert not different, f"{len(different)} tensors differ from the uninterrupted run, e.g. {different[:3]}"
    for path in glob.glob(str(out / "*.pth")):  # no corrupt checkpoint anywhere
        assert "model" in torch.load(path, weights_only=True)
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    # metrics.json: one line per iteration; the lines past the checkpoint were dropped and written again
    iterations = [m["iteration"] for m in read_metrics(out)]
    assert iterations == list(range(8))
    kept = [i for i in logged_before if i < start_iters[-1]]
    assert iterations[: len(kept)] == kept
    # the losses logged before the kill are the uninterrupted run's (after the resume the logged values
    # are smoothed over a window that restarts with the process, so they may differ)
    logged = {m["iteration"]: m["total_loss"] for m in read_metrics(tmp_path / "uninterrupted")}
    assert all(m["total_loss"] == logged[m["iteration"]] for m in read_metrics(out)[: start_iters[-1]])
    assert not stale.exists() and not glob.glob(str(out / ".*.tmp"))


def _ddp_worker(cfg, result_dir):
    from daaf.utils import comm

    trainer = DefaultTrainer(cfg)
    trainer.max_iter = 1
    super(DefaultTrainer, trainer).train(0, 1)
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    torch.save(
        {"files": model.last_file_names, "weight": model.fc.weight.detach().clone(), "world": comm.get_world_size()},
        os.path.join(result_dir, f"rank{comm.get_rank()}.pt"),
    )


@pytest.mark.usefixtures("cpu_processes")
def test_two_process_gloo_ddp_gives_disjoint_shards_and_identical_weights(tiny_cfg, tmp_path):
    cfg = toy_cfg(tiny_cfg, **{"SOLVER.IMS_PER_BATCH": 16, "OUTPUT_DIR": tmp_path / "ddp"})
    launch(_ddp_worker, 2, dist_url="auto", args=(cfg, str(tmp_path)))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert len(r0["files"]) == len(r1["files"]) == 8
    assert not set(r0["files"]) & set(r1["files"])
    assert torch.equal(r0["weight"], r1["weight"])
    assert not torch.equal(r0["weight"], toy_components.ToyReIDNet(cfg).fc.weight)  # a step was taken


def test_destroy_process_groups_forgets_cached_groups_so_a_new_group_can_start():
    import torch.distributed as dist

    from daaf.engine.launch import _find_free_port
    from daaf.utils import comm

    for _ in range(2):  # the second round fails if the first left a cached local group behind
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_find_free_port()}", world_size=1, rank=0)
        comm.create_local_process_group(1)
        assert comm._cpu_group() is dist.group.WORLD and comm._LOCAL_PROCESS_GROUP is not None
        comm.destroy_process_groups()
        assert not dist.is_initialized() and comm._LOCAL_PROCESS_GROUP is None
        assert comm._cpu_group.cache_info().currsize == 0
    comm.destroy_process_groups()  # nothing initialised: a no-op


@pytest.mark.usefixtures("cpu_processes")
def test_train_net_under_torchrun(tiny_cfg, tmp_path):
    out = tmp_path / "torchrun"
    args = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--standalone",
        os.path.join(REPO, "tools", "train_net.py"),
        "OUTPUT_DIR",
        str(out),
        "MODEL.META_ARCHITECTURE",
        "ToyReIDNet",
        "IMPORTS",
        f"['{TOY_MODULE}']",
        "MODEL.DEVICE",
        "cpu",
        "DATASETS.ROOT",
        tiny_cfg.DATASETS.ROOT,
        "DATASETS.TRAIN",
        "('SyntheticPersons',)",
        "DATASETS.TEST",
        "()",
        "INPUT.SIZE_TRAIN",
        "[64, 32]",
        "DATALOADER.NUM_WORKERS",
        "0",
        "SOLVER.IMS_PER_BATCH",
        "16",
        "SOLVER.MAX_ITER",
        "3",
        "SOLVER.CHECKPOINT_PERIOD",
        "100",
        "SEED",
        "0",
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "This is process 0 of 2" in log
    assert (out / "model_final.pth").exists() and (out / "log.txt.rank1").exists()


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 2)
    checkpointer = DAAFCheckpointer(model, str(tmp_path))
    checkpointer.save("model_0000000")
    before = (tmp_path / "model_0000000.pth").read_bytes()

    def exploding_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt  # as if killed mid-write

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save("model_0000000")
    assert (tmp_path / "model_0000000.pth").read_bytes() == before
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000000.pth"
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000000.pth"]


def test_missing_weights_file_is_a_one_line_user_error(tmp_path):
    from daaf.utils.errors import UserError

    checkpointer = DAAFCheckpointer(torch.nn.Linear(2, 2), str(tmp_path))
    with pytest.raises(UserError, match="checkpoint not found: .*nope.pth"):
        checkpointer.resume_or_load(str(tmp_path / "nope.pth"), resume=False)
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint .*corrupt.pth"):
        checkpointer.load(str(tmp_path / "corrupt.pth"))


def test_weights_loading_names_shape_mismatch_and_missing_keys(tmp_path, caplog):
    source = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    DAAFCheckpointer(source, str(tmp_path)).save("src")
    target = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Linear(4, 1), torch.nn.Linear(1, 1))
    import logging

    with caplog.at_level(logging.INFO):
        DAAFCheckpointer(target, str(tmp_path / "t")).resume_or_load(str(tmp_path / "src.pth"), resume=False)
    text = caplog.text
    assert "0.weight" in text and "incompatible shapes" in text
    assert "2.{bias, weight}" in text  # missing in the checkpoint, named


def _lr_curve(cfg, iters):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.SOLVER.BASE_LR)
    scheduler = build_lr_scheduler(cfg, optimizer)
    lrs = []
    for _ in range(iters):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(lrs)


def test_lr_schedules(tiny_cfg):
    cfg = tiny_cfg.clone()
    cfg.merge_from_list(
        key_values(
            {
                "SOLVER.BASE_LR": 1.0,
                "SOLVER.MAX_ITER": 100,
                "SOLVER.LR_SCHEDULER_NAME": "WarmupMultiStepLR",
                "SOLVER.STEPS": "(40, 70)",
                "SOLVER.WARMUP_ITERS": 10,
                "SOLVER.WARMUP_FACTOR": 0.01,
            }
        )
    )
    lrs = _lr_curve(cfg, 100)
    assert lrs[0] == pytest.approx(0.01) and lrs[5] == pytest.approx(0.01 + 0.99 * 0.5)
    assert lrs[10:40] == pytest.approx(1.0) and lrs[40:70] == pytest.approx(0.1) and lrs[70:] == pytest.approx(0.01)

    cfg.merge_from_list(
        key_values(
            {
                "SOLVER.LR_SCHEDULER_NAME": "ExponentialDecayLR",
                "SOLVER.WARMUP_ITERS": 0,
                "SOLVER.DECAY_START": 60,
                "SOLVER.DECAY_FACTOR": 0.001,
            }
        )
    )
    lrs = _lr_curve(cfg, 100)
    assert lrs[:60] == pytest.approx(1.0)
    assert lrs[80] == pytest.approx(0.001 ** (20 / 40))  # TriNet: 0.001 ** ((t - t0) / (T - t0))
    assert np.all(np.diff(lrs[60:]) < 0)


def test_atomically_written_files_get_the_mode_a_plain_open_gives(tmp_path):
    from daaf.utils.file_io import atomic_write

    old = os.umask(0o022)
    try:
        with atomic_write(str(tmp_path / "atomic.json"), "w") as f:
            f.write("{}")
        with open(tmp_path / "plain.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "atomic.json").stat().st_mode & 0o777 == (tmp_path / "plain.json").stat().st_mode & 0o777 == 0o644


def test_json_lines_are_cut_before_the_first_dropped_iteration_in_place(tmp_path):
    from daaf.utils.file_io import truncate_json_lines

    path = tmp_path / "metrics.json"
    path.write_text("".join(json.dumps({"iteration": i, "loss": i / 10}) + "\n" for i in (0, 1, 2, 3, 2, 3)) + '{"iteration": 4, "lo')
    with open(path, "a") as appending:  # as JSONWriter holds it
        assert truncate_json_lines(str(path), 2) == 5
        appending.write(json.dumps({"iteration": 2}) + "\n")
    assert [json.loads(line)["iteration"] for line in path.read_text().splitlines()] == [0, 1, 2]
    assert truncate_json_lines(str(tmp_path / "none.json"), 0) == 0


def test_a_checkpoint_period_below_one_is_a_config_error(tiny_cfg):
    from daaf.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="SOLVER.CHECKPOINT_PERIOD: expected a positive period .*got 0"):
        DefaultTrainer(toy_cfg(tiny_cfg, **{"SOLVER.CHECKPOINT_PERIOD": 0}))


def test_epoch_schedule_is_converted_to_iterations(tiny_cfg):
    cfg = toy_cfg(
        tiny_cfg,
        **{
            "SOLVER.SCHEDULE_UNIT": "epoch",
            "SOLVER.MAX_ITER": 3,
            "SOLVER.STEPS": "(1, 2)",
            "SOLVER.WARMUP_ITERS": 1,
            "SOLVER.CHECKPOINT_PERIOD": 2,
            "TEST.EVAL_PERIOD": 1,
        },
    )
    trainer = DefaultTrainer(cfg)
    iters_per_epoch = 43 // 8  # 43 training images in the tiny set, 8 per batch
    assert trainer.max_iter == 3 * iters_per_epoch
    assert tuple(trainer.cfg.SOLVER.STEPS) == (iters_per_epoch, 2 * iters_per_epoch)
    assert trainer.cfg.SOLVER.WARMUP_ITERS == iters_per_epoch and trainer.cfg.SOLVER.CHECKPOINT_PERIOD == 2 * iters_per_epoch
    assert trainer.cfg.TEST.EVAL_PERIOD == iters_per_epoch and trainer.cfg.MODEL.HEADS.NUM_CLASSES == 8


def test_the_model_structure_goes_to_the_log_file_only(tiny_cfg):
    import logging

    records = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    daaf_logger = logging.getLogger("daaf")
    daaf_logger.addHandler(handler)
    old_level = daaf_logger.level
    daaf_logger.setLevel(logging.DEBUG)
    try:
        model = DefaultTrainer.build_model(tiny_cfg)
    finally:
        daaf_logger.removeHandler(handler)
        daaf_logger.setLevel(old_level)
    structure = [r for r in records if r.getMessage().startswith("Model:\n")]
    summary = [r for r in records if r.getMessage().startswith("Model: ReIDNetwork, ")]
    # the console handler of setup_logger takes INFO and up, log.txt DEBUG and up
    assert len(structure) == 1 and structure[0].levelno == logging.DEBUG and "res5" in structure[0].getMessage()
    assert len(summary) == 1 and summary[0].levelno == logging.INFO
    assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in summary[0].getMessage()


def _dies_on_rank_1(args):
    from daaf.utils import comm

    if comm.get_rank() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # rank 0 would wait for it


@pytest.mark.usefixtures("cpu_processes")
def test_a_rank_that_dies_is_named_with_its_signal(capsys):
    args = default_argument_parser().parse_args(["--num-gpus", "2", "--dist-url", "auto"])
    start = time.time()
    code = launch_cli(_dies_on_rank_1, args)
    assert code == 128 + signal.SIGKILL and time.time() - start < 50  # the other rank is stopped, not waited for
    lines = capsys.readouterr().err.strip().splitlines()
    assert re.fullmatch(r"error: rank 1 \(pid \d+\) was killed by SIGKILL; the other processes were stopped", lines[-1]), lines[-1]


def test_a_keep_freed_memory_setting_other_than_0_or_1_is_one_error_line(monkeypatch):
    from daaf.utils.env import keep_freed_cpu_memory
    from daaf.utils.errors import ConfigError

    monkeypatch.setenv("DAAF_KEEP_FREED_MEMORY", "false")
    with pytest.raises(ConfigError, match=r"^DAAF_KEEP_FREED_MEMORY: expected 0 or 1, got 'false'$"):
        keep_freed_cpu_memory()


@pytest.mark.parametrize(
    "settings,expect_huge_pages,expect_kept",
    [({}, True, True), ({"THP_MEM_ALLOC_ENABLE": "0"}, False, False), ({"DAAF_KEEP_FREED_MEMORY": "0"}, True, False)],
    ids=["default", "THP_MEM_ALLOC_ENABLE=0", "DAAF_KEEP_FREED_MEMORY=0"],
)
def test_large_cpu_tensors_use_huge_pages_and_freed_memory_is_reused_unless_told_not_to(settings, expect_huge_pages, expect_kept):
    """Importing the package before torch (as every tool does) makes PyTorch's CPU allocator use
    transparent huge pages for large tensors, and keep_freed_cpu_memory (what default_setup calls)
    has glibc reuse a freed large tensor's memory: a second 256 MB tensor faults in no new pages."""
    try:
        mode = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        pytest.skip("this kernel has no transparent huge pages")
    if "[never]" in mode:
        pytest.skip("transparent huge pages are off on this machine")
    code = (
        "import json, platform, resource, daaf.engine, torch\n"
        "from daaf.utils.env import keep_freed_cpu_memory\n"
        "kept = keep_freed_cpu_memory()\n"
        "def huge(): return sum(int(l.split()[1]) for l in open('/proc/self/smaps') if l.startswith('AnonHugePages:'))\n"
        "def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "before = huge(); x = torch.ones(64 * 2**20, dtype=torch.uint8); huge_kb = huge() - before; del x\n"
        "x = torch.ones(64 * 2**20); del x  # 256 MB, freed\n"
        "before = faults(); x = torch.ones(64 * 2**20); again = faults() - before\n"
        "print(json.dumps([huge_kb, kept, again, platform.libc_ver()[0]]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "DAAF_KEEP_FREED_MEMORY")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, **settings}, cwd=REPO, check=True)
    huge_kb, kept, faults_again, libc = json.loads(result.stdout.strip().splitlines()[-1])
    assert (huge_kb >= 32 * 1024) == expect_huge_pages, huge_kb
    if libc != "glibc":
        assert not kept  # only glibc's malloc is tuned
        return
    assert kept == expect_kept
    # reused: no new page; returned to the system: 128 huge pages or 65,536 small ones faulted in again
    assert (faults_again < 32) if expect_kept else (faults_again >= 100), faults_again
