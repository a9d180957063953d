"""A component from outside the package, with config keys of its own (tests/user_branch.py), goes
through the unchanged tools: tools/train_net.py trains it, evaluates it; extract_features and
export_model read the run's config.yaml, which names the component's keys and its module."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import torch

from daaf.config import build_config
from daaf.modeling import build_model

from conftest import REPO, TESTS

USER_MODULE = os.path.join(TESTS, "user_branch.py")


def write_user_config(path, synthetic_root, output_dir):
    path.write_text(
        textwrap.dedent(
            f"""\
            _BASE_: "{os.path.join(REPO, "configs", "Synthetic", "trinet_R18.yaml")}"
            IMPORTS: ["{USER_MODULE}"]
            MODEL:
              HEADS:
                MID_DIM: 64
                EMBEDDING_DIM: 16
              DAAF:
                BRANCHES: ["CentreBranch"]
              CENTRE_BRANCH:
                WEIGHT: 0.25
            DATASETS:
              ROOT: "{synthetic_root}"
            INPUT:
              SIZE_TRAIN: [64, 32]
              CROP_FROM: [72, 36]
              SIZE_TEST: [64, 32]
            DATALOADER:
              NUM_WORKERS: 0
            SOLVER:
              MAX_ITER: 3
              DECAY_START: 1
              IMS_PER_BATCH: 8
              CHECKPOINT_PERIOD: 100
            TEST:
              IMS_PER_BATCH: 16
              SAVE_RANKS: False
            LOG_PERIOD: 1
            OUTPUT_DIR: "{output_dir}"
            """
        )
    )
    return str(path)


# Run in one fresh interpreter, as their command lines would: nothing of the user module is
# registered there before a tool builds its config.
_TOOLS_SCRIPT = """
import runpy, sys
import daaf.modeling.attention as attention
assert "CentreBranch" not in attention.ATTENTION_BRANCH_REGISTRY
for argv in {commands!r}:
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            raise SystemExit(f"{{argv[0]}} exited with {{e.code}}")
"""


def test_a_user_branch_with_its_own_keys_trains_evaluates_extracts_and_exports(synthetic_root, tmp_path):
    out = tmp_path / "run"
    config = write_user_config(tmp_path / "user.yaml", synthetic_root, out)
    train = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", config], capture_output=True, text=True, timeout=300
    )
    assert train.returncode == 0, train.stderr[-3000:]

    # the YAML value reached the branch, and its loss was trained
    state = torch.load(out / "model_final.pth", weights_only=True)["model"]
    assert float(state["branches.CentreBranch.configured_weight"]) == 0.25
    lines = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert sum("loss_centre" in line for line in lines) == 3
    dumped = (out / "config.yaml").read_text()
    assert "CENTRE_BRANCH" in dumped and USER_MODULE in dumped

    run_config, weights = str(out / "config.yaml"), str(out / "model_final.pth")
    query = os.path.join(synthetic_root, "SyntheticPersons", "query")
    commands = [
        [os.path.join(REPO, "tools", "train_net.py"), "--config-file", run_config, "--eval-only", "MODEL.WEIGHTS", weights],
        [
            os.path.join(REPO, "tools", "extract_features.py"),
            "--config-file",
            run_config,
            "--input",
            query,
            "--output",
            str(tmp_path / "features.npz"),
            "--workers",
            "0",
            "MODEL.WEIGHTS",
            weights,
        ],
        [
            os.path.join(REPO, "tools", "export_model.py"),
            "--config-file",
            run_config,
            "--output",
            str(tmp_path / "exported"),
            "--format",
            "onnx",
            "MODEL.WEIGHTS",
            weights,
        ],
    ]
    tools = subprocess.run([sys.executable, "-c", _TOOLS_SCRIPT.format(commands=commands)], capture_output=True, text=True, timeout=300)
    assert tools.returncode == 0, tools.stderr[-3000:]

    results = json.loads((out / "inference" / "results.json").read_text())
    assert 0 <= results["results"]["SyntheticPersons"]["mAP"] <= 100
    features = np.load(tmp_path / "features.npz")
    assert features["features"].shape == (len(features["file_names"]), 16) and len(features["file_names"]) > 0
    report = json.loads((tmp_path / "exported" / "export.json").read_text())
    assert report["files"]["onnx"]["max_abs_diff"] <= 1e-4
    # the exported network is the base network: the user branch's parameters are gone
    trained = build_model(build_config(run_config))
    base_parameters = sum(p.numel() for name, p in trained.named_parameters() if not name.startswith("branches."))
    assert report["parameters"] == base_parameters < sum(p.numel() for p in trained.parameters())
