"""The main job (tools/demo.py) end to end on the tiny synthetic data: two training runs through
tools/train_net.py, the table, summary.json and the pictures."""

import json
import os

import cv2
import pytest

from conftest import load_tool


def test_demo_trains_both_models_and_reports_them(synthetic_root, tmp_path, capsys):
    out = tmp_path / "demo"
    argv = [
        "--output-root",
        str(out),
        "--attention-crops",
        "2",
        "DATASETS.ROOT",
        synthetic_root,
        "SOLVER.MAX_ITER",
        "4",
        "SOLVER.DECAY_START",
        "2",
        "SOLVER.IMS_PER_BATCH",
        "8",
        "INPUT.SIZE_TRAIN",
        "[64, 32]",
        "INPUT.CROP_FROM",
        "[72, 36]",
        "INPUT.SIZE_TEST",
        "[64, 32]",
        "DATALOADER.NUM_WORKERS",
        "0",
        "SOLVER.CHECKPOINT_PERIOD",
        "100",
        "LOG_PERIOD",
        "2",
    ]
    # The demo's own process is this one (its two training runs are tools/train_net.py subprocesses).
    demo = load_tool("demo")
    assert demo.main(demo.parser().parse_args(argv)) is None
    result = capsys.readouterr()

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["results"]) == {"TriNet", "DAAF-TriNet"}
    lines = result.out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model") and "mAP" in line and "train time" in line)
    for row, name in zip(lines[header + 2 : header + 4], ("TriNet", "DAAF-TriNet")):
        r = summary["results"][name]
        assert row.startswith(name) and f"{r['mAP']:6.2f}" in row and f"{r['Rank-1']:6.2f}" in row
        assert 0 <= r["mINP"] <= 100 and 0 < r["mAP"] <= 100 and r["Rank-1"] <= r["Rank-5"] and r["train_time_s"] > 0
    assert ("DAAF-TriNet beats TriNet" in result.out) == (summary["results"]["DAAF-TriNet"]["mAP"] > summary["results"]["TriNet"]["mAP"])

    for tag in ("trinet_R18", "daaf_trinet_R18"):
        run = out / tag
        assert (run / "model_final.pth").exists() and (run / "metrics.json").exists()
        assert any(name.startswith("events.out.tfevents") for name in os.listdir(run))
    pad = 4
    trinet = cv2.imread(summary["pictures"]["TriNet"]["attention"])
    daaf = cv2.imread(summary["pictures"]["DAAF-TriNet"]["attention"])
    assert trinet.shape == (2 * (128 + pad) + pad, 3 * (64 + pad) + pad, 3)  # input + HAM + colour key
    assert daaf.shape == (2 * (128 + pad) + pad, 16 * (64 + pad) + pad, 3)  # + 6 PAMs, HAB, 6 PAB groups
    assert "DAAF-TriNet on the SyntheticPersons query crops: keypoint heatmap peak PCK@0.1" in result.out
    pck = summary["results"]["DAAF-TriNet"]["pab_pck"]
    assert 0 <= pck["all"] <= 1 and 0 <= pck["fixed_pose"] <= 1 and pck["spread"] >= 0
    ranked = cv2.imread(summary["pictures"]["DAAF-TriNet"]["ranked_list"])
    assert ranked.shape[1] == 9 * (128 + pad) + pad and ranked.shape[0] % (256 + pad) == pad
    assert cv2.imread(str(out / "cmc.png")) is not None
    # the paired comparison over the queries, printed and written
    compared = {c["metric"]: c for c in json.loads((out / "comparison.json").read_text())}
    assert list(compared) == ["mAP", "Rank-1", "mINP"]
    m = compared["mAP"]
    assert m["mean_difference"] == pytest.approx(summary["results"]["DAAF-TriNet"]["mAP"] - summary["results"]["TriNet"]["mAP"], abs=1e-3)
    assert m["low"] <= m["mean_difference"] <= m["high"]
    assert f"  mAP {m['mean_difference']:+.2f} [{m['low']:+.2f}, {m['high']:+.2f}], p {m['p_value']:.3g}: {m['verdict']}" in lines
