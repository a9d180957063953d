"""One writer per run folder, one run per folder, and a run is finished when its final evaluation
is written. Trainings run as tools/train_net.py runs them, in this process (a toy model)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from daaf.engine import default_argument_parser, launch_cli
from daaf.engine.run_folder import LOCK_NAME, claim_run_folder
from daaf.utils.errors import UserError

import toy_components  # noqa: F401  (registers ToyReIDNet)
from conftest import REPO, TESTS, load_tool

TOY_MODULE = os.path.join(TESTS, "toy_components.py")


def toy_config(tiny_cfg, tmp_path, test_sets="('SyntheticPersons',)"):
    """A config file of the toy model on the tiny synthetic data (4 iterations, evaluated at the end)."""
    cfg = tiny_cfg.clone()
    cfg.merge_from_list(["MODEL.META_ARCHITECTURE", "ToyReIDNet", "IMPORTS", f"['{TOY_MODULE}']", "SOLVER.MAX_ITER", "4"])
    cfg.merge_from_list(["SOLVER.CHECKPOINT_PERIOD", "2", "DATASETS.TEST", test_sets])
    path = tmp_path / "toy.yaml"
    path.write_text(cfg.dump())
    return str(path)


def train(config, output, *flags, capsys=None):
    """(exit code, last stderr line) of tools/train_net.py with ``flags`` into ``output``."""
    args = default_argument_parser().parse_args(["--config-file", config, *flags, "OUTPUT_DIR", str(output)])
    code = launch_cli(load_tool("train_net").main, args)
    err = capsys.readouterr().err.strip().splitlines() if capsys else [""]
    return code, err[-1] if err else ""


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder`` but the lock file."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in (n for n in names if n != LOCK_NAME):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


def test_a_second_writer_is_refused_while_the_first_lives_and_a_killed_one_leaves_no_lock(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from daaf.engine.run_folder import LOCK_NAME, claim_run_folder
            claim_run_folder({str(folder)!r}, resume=False)
            print("locked", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError) as info:
            claim_run_folder(str(folder), resume=True)
        message = str(info.value)
        assert message.startswith(f"OUTPUT_DIR {folder}: another training writes there (process {holder.pid} on ")
        assert "\n" not in message
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    claim_run_folder(str(folder), resume=True)  # the kernel dropped the dead holder's lock


def test_a_new_run_into_a_finished_runs_folder_is_refused_and_changes_nothing(tiny_cfg, tmp_path, capsys):
    config, out = toy_config(tiny_cfg, tmp_path, test_sets="()"), tmp_path / "run"
    assert train(config, out, capsys=capsys)[0] == 0
    before = snapshot(out)
    code, line = train(config, out, capsys=capsys)
    assert code == 2
    assert line.startswith(f"error: OUTPUT_DIR {out}: holds an earlier run (config.yaml, events.out.tfevents.")
    assert "--resume goes on with it, --start-over moves it into a replaced-<time> folder" in line
    after = snapshot(out)
    after.pop("log.txt", None), before.pop("log.txt", None)
    assert after == before  # nothing of the earlier run changed, nothing of the refused one written


def test_start_over_moves_the_earlier_run_aside_and_trains_anew(tiny_cfg, tmp_path, capsys):
    config, out = toy_config(tiny_cfg, tmp_path, test_sets="()"), tmp_path / "run"
    assert train(config, out, capsys=capsys)[0] == 0
    earlier = snapshot(out)
    assert train(config, out, "--start-over", capsys=capsys)[0] == 0
    (aside,) = [n for n in os.listdir(out) if n.startswith("replaced-")]
    moved = snapshot(out / aside)
    assert {k: v for k, v in moved.items() if k != "log.txt"} == {k: v for k, v in earlier.items() if k != "log.txt"}
    iterations = [json.loads(line)["iteration"] for line in (out / "metrics.json").read_text().splitlines()]
    assert iterations[:4] == [0, 1, 2, 3]  # one line per iteration of the new run, none of the old


def test_a_failing_resumed_run_does_not_rewrite_the_runs_config(tiny_cfg, tmp_path, capsys):
    config, out = toy_config(tiny_cfg, tmp_path, test_sets="()"), tmp_path / "run"
    assert train(config, out, capsys=capsys)[0] == 0
    recorded = (out / "config.yaml").read_bytes()
    code, line = train(config, out, "--resume", "DATASETS.ROOT", str(tmp_path / "nowhere"), capsys=capsys)
    assert code == 2 and "dataset folder not found" in line
    assert (out / "config.yaml").read_bytes() == recorded


def test_a_run_killed_in_its_final_evaluation_evaluates_when_resumed(tiny_cfg, tmp_path, capsys):
    config, out = toy_config(tiny_cfg, tmp_path), tmp_path / "run"
    assert train(config, out, capsys=capsys)[0] == 0
    results = json.loads((out / "inference" / "results.json").read_text())
    assert results["iteration"] == 4
    lines = (out / "metrics.json").read_text().splitlines()
    final_line = json.loads(lines[-1])
    assert any(k.startswith("SyntheticPersons/") for k in final_line)
    # as a kill during the final evaluation leaves it: results of an earlier evaluation, no final line
    (out / "inference" / "results.json").write_text(json.dumps({**results, "iteration": 1}))
    (out / "metrics.json").write_text("\n".join(lines[:-1]) + "\n")
    assert train(config, out, "--resume", capsys=capsys)[0] == 0
    assert json.loads((out / "inference" / "results.json").read_text())["iteration"] == 4
    again = (out / "metrics.json").read_text().splitlines()
    assert len(again) == len(lines) and {k for k in json.loads(again[-1]) if "/" in k} == {k for k in final_line if "/" in k}
    stamp = os.path.getmtime(out / "inference" / "results.json")
    time.sleep(0.01)
    assert train(config, out, "--resume", capsys=capsys)[0] == 0  # finished now: nothing is done again
    assert os.path.getmtime(out / "inference" / "results.json") == stamp


def test_a_run_killed_before_its_first_checkpoint_resumes_from_zero_with_one_line_per_iteration(tiny_cfg, tmp_path, capsys):
    config, out = toy_config(tiny_cfg, tmp_path, test_sets="()"), tmp_path / "run"
    out.mkdir()
    # what a kill inside the first checkpoint write leaves: lines of iterations 0-1, no checkpoint
    (out / "metrics.json").write_text("".join(json.dumps({"iteration": i, "total_loss": 9.0}) + "\n" for i in range(2)))
    assert train(config, out, "--resume", capsys=capsys)[0] == 0
    lines = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert [m["iteration"] for m in lines if "total_loss" in m] == [0, 1, 2, 3]
    assert all(m.get("total_loss") != 9.0 for m in lines)
