"""projects/DAAF/reproduce.py: the runs a table needs, each once, continued after a kill, and the
table of paper vs measured numbers with paired deltas. train_net is replaced by a stand-in that
writes what a finished run writes (tests/engine covers train_net itself)."""

import json
import os
import shlex
import subprocess

import numpy as np
import pytest

from daaf.evaluation import save_per_query
from daaf.utils.errors import UserError

from conftest import REPO, load_tool


@pytest.fixture
def reproduce(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(REPO, "projects", "DAAF"))  # its paper_tables, as when run as a script
    return load_tool("reproduce", os.path.join("projects", "DAAF"))


NUM_QUERIES = 200


def write_per_query(folder, mAP, rank1):
    """Per-query results whose means are ``mAP`` and ``rank1`` (multiples of 0.5): APs alternate
    +-5 points around mAP, and the first true match is at rank 1 for the first rank1 % of queries."""
    ap = (mAP + np.where(np.arange(NUM_QUERIES) % 2 == 0, 5.0, -5.0)) / 100
    first = np.where(np.arange(NUM_QUERIES) < round(rank1 / 100 * NUM_QUERIES), 1, 2)
    save_per_query(
        os.path.join(folder, "per_query.npz"),
        query_files=np.array([f"q{i}.jpg" for i in range(NUM_QUERIES)]),
        query_pids=np.arange(NUM_QUERIES),
        query_camids=np.zeros(NUM_QUERIES, np.int64),
        query_ap=ap.astype(np.float32),
        query_inp=ap.astype(np.float32),
        query_first_match=first,
    )


class FakeTrainNet:
    """Writes model_final.pth, inference/results.json and per-query results as train_net does; mAP
    and Rank-1 depend on the branches and the seed, so the deltas are known. Fails (as if killed)
    at call ``fail_at``."""

    def __init__(self, fail_at=None):
        self.commands, self.fail_at = [], fail_at

    def __call__(self, command, cwd=None, stdout=None):
        self.commands.append(command)
        if len(self.commands) == self.fail_at:
            return -9

        def value(key):
            return command[command.index(key) + 1]

        out, seed, branches = value("OUTPUT_DIR"), int(value("SEED")), value("MODEL.DAAF.BRANCHES")
        gain = 2.0 * branches.count("HAB") + 3.0 * branches.count("PAB") + (0.5 if "coco4" in command else 0.0)
        os.makedirs(os.path.join(out, "inference", "SyntheticPersons"), exist_ok=True)
        open(os.path.join(out, "model_final.pth"), "wb").close()
        results = {"SyntheticPersons": {"Rank-1": 60.0 + gain + seed, "mAP": 40.0 + gain + 2 * seed}}
        write_per_query(
            os.path.join(out, "inference", "SyntheticPersons"), results["SyntheticPersons"]["mAP"], results["SyntheticPersons"]["Rank-1"]
        )
        with open(os.path.join(out, "inference", "results.json"), "w") as f:
            json.dump({"weights": "", "results": results}, f)
        return 0


def test_a_table_runs_each_config_once_goes_on_after_a_kill_and_reports_paired_deltas(
    reproduce, synthetic_root, tmp_path, monkeypatch, capsys
):
    out = str(tmp_path / "reproduce")
    argv = ["--table", "4", "6", "--synthetic", "--seeds", "0", "1", "2", "--output-dir", out, "DATASETS.ROOT", synthetic_root]
    killed = FakeTrainNet(fail_at=5)
    monkeypatch.setattr(subprocess, "call", killed)
    with pytest.raises(UserError, match=r"failed \(exit -9\); its log: .*/log.txt"):
        reproduce.main(reproduce.parser().parse_args(argv))
    resumed = FakeTrainNet()
    monkeypatch.setattr(subprocess, "call", resumed)
    assert reproduce.main(reproduce.parser().parse_args(argv)) == 0
    # 4 rows of Table 4 and 5 of Table 6, whose 6-group row is Table 4's HAB + PAB: 8 configs x 3 seeds
    runs = {shlex.join(c[c.index("OUTPUT_DIR") + 1 :]) for c in killed.commands[:4] + resumed.commands}
    assert len(runs) == 24 and len(resumed.commands) == 24 - 4  # the 4 finished before the kill are not run again
    assert all("--resume" in c for c in resumed.commands)  # a killed training goes on from its checkpoint
    table = json.load(open(os.path.join(out, "table4_synthetic.json")))
    hab = next(e for e in table if e["experiment"] == "+ HAB")
    assert hab["paper"] == [68.26, 83.70] and hab["paper_delta"] == pytest.approx([68.26 - 65.48, 83.70 - 82.51])
    assert hab["measured"] == [[42.0, 44.0, 46.0], [62.0, 63.0, 64.0]]
    assert hab["mean_std"] == [pytest.approx((44.0, 2.0)), pytest.approx((63.0, 1.0))]
    assert hab["delta_mean_std"] == [pytest.approx((2.0, 0.0)), pytest.approx((2.0, 0.0))] and hab["seeds_better"] == [3, 3]
    # the paired comparison over seeds and queries: every query gains exactly 2 points of AP
    compared = {c["metric"]: c for c in hab["comparison"]}
    assert list(compared) == ["mAP", "Rank-1", "mINP"] and compared["mAP"]["seeds"] == [0, 1, 2]
    assert compared["mAP"]["mean_difference"] == pytest.approx(2.0, abs=1e-4) and compared["mAP"]["verdict"] == "better"
    assert compared["mAP"]["low"] == pytest.approx(2.0, abs=1e-4) and compared["mAP"]["num_queries"] == NUM_QUERIES
    # 4 more of 200 queries at rank 1 per seed (8 different ones over the seeds), none fewer
    assert compared["Rank-1"]["mean_difference"] == pytest.approx(2.0) and compared["Rank-1"]["p_value"] == pytest.approx(
        2 / 256, abs=0.004
    )
    six = json.load(open(os.path.join(out, "table6_synthetic.json")))
    assert next(e for e in six if e["experiment"] == "4 groups")["delta_mean_std"][0] == pytest.approx((5.5, 0.0))
    printed = capsys.readouterr().out
    assert "| + HAB | SyntheticPersons | mAP / Rank-1 | 68.26 / 83.70 | 44.00 +- 2.00 / 63.00 +- 1.00 | +2.78 / +1.19 |" in printed
    assert "+2.00 +- 0.00 (3/3) / +2.00 +- 0.00 (3/3) vs base network" in printed
    assert "mAP +2.00 [+2.00, +2.00] p " in printed and "paired bootstrap over seeds and queries together (10000 resamples" in printed
    assert "the paper does not say whether Table 6 uses HAB" in printed  # Table 6's note
    lines = open(os.path.join(out, "table4_synthetic.csv")).read().splitlines()
    assert lines[0].startswith("table,experiment,test,metric,paper,seed0,seed1,seed2,mean,std") and len(lines) == 1 + 4 * 2
    # everything done: nothing runs again
    again = FakeTrainNet()
    monkeypatch.setattr(subprocess, "call", again)
    assert reproduce.main(reproduce.parser().parse_args(argv)) == 0 and again.commands == []
    # other settings: the runs are not "done", and their folders are refused, naming what differs
    changed = [*argv, "SOLVER.MAX_ITER", "40"]
    assert reproduce.main(reproduce.parser().parse_args(["--dry-run", *changed])) == 0
    assert "# done" not in capsys.readouterr().out
    with pytest.raises(UserError, match=r"holds a run made with other settings \(SOLVER.MAX_ITER: 400 -> 40\)"):
        reproduce.main(reproduce.parser().parse_args(changed))
    assert again.commands == []


def test_dry_run_lists_the_commands_and_rows_that_share_a_config_share_its_run(reproduce, capsys):
    argv = ["--table", "5", "7", "--seeds", "0", "--dry-run", "--output-dir", "/tmp/none"]
    assert reproduce.main(reproduce.parser().parse_args(argv)) == 0
    commands = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    configs = [c.split("--config-file ")[1].split()[0] for c in commands]
    assert len(configs) == len(set(configs))  # table4_pab.yaml serves 3 rows, trained once
    assert {os.path.relpath(c, REPO) for c in configs} >= {
        "projects/DAAF/configs/table4_pab.yaml",
        "projects/DAAF/configs/table4_base.yaml",
    }


def test_a_missing_dataset_stops_it_before_anything_trains(reproduce, tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "call", lambda *a, **k: pytest.fail("trained"))
    argv = ["--table", "4", "--synthetic", "--seeds", "0", "--output-dir", str(tmp_path), "DATASETS.ROOT", str(tmp_path / "none")]
    with pytest.raises(UserError, match=r"^SyntheticPersons: dataset folder not found: .*none/SyntheticPersons"):
        reproduce.main(reproduce.parser().parse_args(argv))
    argv = ["--table", "2", "--synthetic", "--seeds", "0", "--output-dir", str(tmp_path)]
    with pytest.raises(UserError, match=r"^--synthetic: tables 4, 5, 6, 7 have a synthetic version, not 2"):
        reproduce.main(reproduce.parser().parse_args(argv))


def test_report_writes_the_table_of_the_runs_done_so_far_and_runs_nothing(reproduce, synthetic_root, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "reproduce")
    argv = ["--table", "4", "--synthetic", "--seeds", "0", "1", "2", "--output-dir", out, "DATASETS.ROOT", synthetic_root]
    monkeypatch.setattr(subprocess, "call", FakeTrainNet(fail_at=5))  # base x 3 seeds and + HAB seed 0 finish
    with pytest.raises(UserError):
        reproduce.main(reproduce.parser().parse_args(argv))
    monkeypatch.setattr(subprocess, "call", lambda *a, **k: pytest.fail("--report ran something"))
    assert reproduce.main(reproduce.parser().parse_args(["--report", *argv])) == 0
    table = {e["experiment"]: e for e in json.load(open(os.path.join(out, "table4_synthetic.json")))}
    hab, pab = table["+ HAB"], table["+ PAB"]
    assert hab["measured"] == [[42.0, None, None], [62.0, None, None]] and hab["seeds_done"] == 1
    assert hab["pairs"] == 1 and hab["delta_mean_std"] == [[pytest.approx(2.0), None], [pytest.approx(2.0), None]]
    assert hab["comparison"][0]["seeds"] == [0] and pab["comparison"] == []
    assert pab["seeds_done"] == 0 and pab["mean_std"] == [None, None] and pab["pairs"] == 0
    assert table["base network"]["mean_std"][0] == pytest.approx((42.0, 2.0))
    printed = capsys.readouterr().out
    assert "| 42.00 +- n/a / 62.00 +- n/a (1 of 3 seeds) |" in printed and "+2.00 +- n/a (1/1)" in printed
    assert "| + PAB | SyntheticPersons | mAP / Rank-1 | 69.31 / 84.41 | not run yet | +3.83 / +1.90 | - | - |" in printed
    csv_rows = open(os.path.join(out, "table4_synthetic.csv")).read().splitlines()
    assert any(r.startswith("4,+ HAB,SyntheticPersons,mAP,68.26,42.0,,,42.0,,base network,2.0,,2.0") for r in csv_rows)


def expected_base(row):
    """The row a row is compared with, by the paper's design: Tables 4-7 against Table 4's base
    network, a DAAF row against the same row without DAAF (same test, same re-ranking)."""
    if row.table in ("4", "5", "6", "7"):
        return None if row.key == ("4", "base network") else ("4", "base network")
    return (row.table, row.experiment.removeprefix("DAAF-")) if row.experiment.startswith("DAAF-") else None


def test_every_row_of_every_table_is_paired_with_its_own_base_row(reproduce, tmp_path):
    from paper_tables import ROWS
    from reproduction.plan import Plan
    from reproduction.tables import table_results

    tables = ("2", "3", "4", "5", "6", "7", "occlusion")
    assert {row.table for row in ROWS} == set(tables)
    for row in ROWS:
        assert row.base == expected_base(row), f"table {row.table}, {row.experiment}"
    # the table's deltas subtract that row's numbers: each row's results are its own code
    code = {row.key: 100.0 * i for i, row in enumerate(ROWS)}
    plan = Plan(list(tables), [], [0, 1], str(tmp_path), False, [])
    plan.result = lambda row, seed, dataset, metric: code[row.key] + seed + (0.5 if metric == "Rank-1" else 0.0)
    plan.per_query = lambda row, dataset: {}
    compared = 0
    for table in tables:
        for entry in table_results(plan, table):
            row = next(r for r in ROWS if r.key == (table, entry["experiment"]))
            if expected_base(row) is None:
                assert "base" not in entry
                continue
            base_code = code[expected_base(row)]
            assert entry["base"] == expected_base(row)[1] and entry["pairs"] == 2
            assert [d[0] for d in entry["delta_mean_std"]] == [pytest.approx(code[row.key] - base_code)] * 2
            compared += 1
    assert compared == sum(expected_base(r) is not None for r in ROWS for _ in r.test)
