import os
import subprocess
import sys

import pytest

from daaf.config import CfgNode, configurable, get_cfg
from daaf.utils.errors import ConfigError

from conftest import REPO


def write(path, text):
    path.write_text(text)
    return str(path)


def test_dump_and_merge_round_trip(tmp_path):
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = 0.123
    cfg.DATASETS.TRAIN = ("A", "B")
    cfg.MODEL.DAAF.BRANCHES = ["HAB", "PAB"]
    path = write(tmp_path / "dump.yaml", cfg.dump())
    loaded = get_cfg()
    loaded.merge_from_file(path)
    assert loaded == cfg
    assert loaded.SOLVER.BASE_LR == pytest.approx(0.123)
    assert tuple(loaded.DATASETS.TRAIN) == ("A", "B")


def test_base_inheritance_child_overrides_base(tmp_path):
    write(tmp_path / "base.yaml", "SOLVER:\n  BASE_LR: 0.1\n  MAX_ITER: 10\nMODEL:\n  BACKBONE:\n    DEPTH: 34\n")
    child = write(tmp_path / "child.yaml", '_BASE_: "base.yaml"\nSOLVER:\n  MAX_ITER: 20\n')
    cfg = get_cfg()
    cfg.merge_from_file(child)
    assert cfg.SOLVER.BASE_LR == pytest.approx(0.1)
    assert cfg.SOLVER.MAX_ITER == 20
    assert cfg.MODEL.BACKBONE.DEPTH == 34


def test_shipped_synthetic_config_inherits_base_trinet():
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO, "configs", "Synthetic", "trinet_R18.yaml"))
    assert cfg.SOLVER.LR_SCHEDULER_NAME == "ExponentialDecayLR"  # from Base-TriNet.yaml
    assert cfg.MODEL.HEADS.EMBEDDING_DIM == 128
    assert cfg.MODEL.BACKBONE.DEPTH == 18  # own value
    assert cfg.MODEL.DEVICE == "cpu"


def test_command_line_overrides_are_typed():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.BASE_LR", "0.5", "DATASETS.TRAIN", "('Market1501', 'DukeMTMCreID')", "TEST.FLIP.ENABLED", "True"])
    assert cfg.SOLVER.BASE_LR == 0.5
    assert tuple(cfg.DATASETS.TRAIN) == ("Market1501", "DukeMTMCreID")
    assert cfg.TEST.FLIP.ENABLED is True


def test_unknown_key_error_names_key_and_file(tmp_path):
    path = write(tmp_path / "bad.yaml", "SOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_file(path)
    message = str(info.value)
    assert "SOLVER.BASE_LRR" in message and path in message
    assert "\n" not in message


def test_wrong_type_error_names_key_and_file(tmp_path):
    path = write(tmp_path / "bad_type.yaml", "SOLVER:\n  MAX_ITER: many\n")
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_file(path)
    assert "SOLVER.MAX_ITER" in str(info.value) and path in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_override_and_odd_override_list():
    with pytest.raises(ConfigError, match="MODEL.NOT_A_KEY"):
        get_cfg().merge_from_list(["MODEL.NOT_A_KEY", "1"])
    with pytest.raises(ConfigError, match="KEY VALUE"):
        get_cfg().merge_from_list(["SOLVER.BASE_LR"])


def test_missing_base_file_is_named(tmp_path):
    path = write(tmp_path / "child.yaml", '_BASE_: "nowhere.yaml"\n')
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        get_cfg().merge_from_file(path)


class _Widget:
    @configurable
    def __init__(self, *, width: int, height: int = 2):
        self.width, self.height = width, height

    @classmethod
    def from_config(cls, cfg):
        return {"width": cfg.SOLVER.MAX_ITER, "height": cfg.SOLVER.IMS_PER_BATCH}


def test_configurable_with_explicit_args_with_cfg_and_with_cfg_plus_override():
    cfg = get_cfg()
    cfg.SOLVER.MAX_ITER, cfg.SOLVER.IMS_PER_BATCH = 7, 9
    explicit = _Widget(width=3)
    from_cfg = _Widget(cfg)
    overridden = _Widget(cfg, height=5)
    assert (explicit.width, explicit.height) == (3, 2)
    assert (from_cfg.width, from_cfg.height) == (7, 9)
    assert (overridden.width, overridden.height) == (7, 5)


def test_configurable_function_form():
    @configurable(from_config=lambda cfg: {"n": cfg.SOLVER.MAX_ITER})
    def double(n):
        return 2 * n

    cfg = get_cfg()
    cfg.SOLVER.MAX_ITER = 21
    assert double(cfg) == 42 and double(n=4) == 8


def test_train_net_reports_config_errors_in_one_line(tmp_path):
    path = write(tmp_path / "bad.yaml", "SOLVER:\n  BASE_LRR: 0.1\n")
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", path, "OUTPUT_DIR", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    error_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert error_lines == [
        f"error: {path}: unknown config key SOLVER.BASE_LRR (a component's own keys exist once its module is in IMPORTS)"
    ]
    assert "Traceback" not in proc.stderr


def test_get_cfg_returns_independent_copies():
    a, b = get_cfg(), get_cfg()
    a.SOLVER.BASE_LR = 1.0
    assert b.SOLVER.BASE_LR != 1.0
    assert isinstance(a, CfgNode)
