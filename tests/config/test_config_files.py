"""Every shipped config loads and builds its model; every DAAF variant trains a few steps."""

import glob
import json
import math
import os

import pytest
import torch

from daaf.config import get_cfg
from daaf.data import DATASET_REGISTRY
from daaf.modeling import build_model
from daaf.pseudo_label import PSEUDO_LABELER_REGISTRY

from conftest import REPO

MODEL_CONFIGS = sorted(
    p
    for p in glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True)
    + glob.glob(os.path.join(REPO, "projects", "**", "*.yaml"), recursive=True)
    if os.sep + "PseudoLabel" + os.sep not in p and not os.path.basename(p).startswith("Base-")
)
PSEUDO_LABEL_CONFIGS = sorted(p for p in glob.glob(os.path.join(REPO, "configs", "PseudoLabel", "*.yaml")) if "Base-" not in p)


def load(path):
    cfg = get_cfg()
    cfg.merge_from_file(path)
    return cfg


def rel(path):
    return os.path.relpath(path, REPO)


def test_the_paper_configs_are_all_there():
    names = {rel(p) for p in MODEL_CONFIGS}
    for dataset in ("Market1501", "DukeMTMCreID", "CUHK03Labeled", "CUHK03Detected"):
        for model in ("trinet", "daaf_trinet", "bot", "daaf_bot"):
            assert f"configs/{dataset}/{model}_R50.yaml" in names
    for model in ("trinet", "daaf_trinet", "bot", "daaf_bot"):
        assert f"configs/Partial/{model}_R50.yaml" in names


def test_every_paper_table_row_runs_a_config_with_the_rows_settings():
    from conftest import load_tool

    tables = load_tool("paper_tables", os.path.join("projects", "DAAF"))
    for row in (r for r in tables.ROWS if r.built):
        cfg = load(os.path.join(REPO, row.config))
        cfg.merge_from_list(list(row.overrides))
        settings = tables.effective_settings(cfg)
        assert settings == tables.expected_settings(row), f"table {row.table}, {row.experiment}: {row.config}"
    # every ablation config is a row of some table, and README shows the table the rows make
    ablation_configs = {rel(p) for p in glob.glob(os.path.join(REPO, "projects", "DAAF", "configs", "table*.yaml"))}
    assert ablation_configs == {row.config for row in tables.ROWS if row.config.startswith(tables.ABLATIONS)}
    with open(os.path.join(REPO, "projects", "DAAF", "README.md")) as f:
        assert tables.markdown_table() in f.read()


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=rel)
def test_config_loads_and_builds_its_model(path):
    cfg = load(path)
    for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
        assert name in DATASET_REGISTRY, f"{rel(path)}: dataset {name} is not registered"
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES", "10"])
    model = build_model(cfg)
    assert bool(cfg.MODEL.DAAF.BRANCHES) == (len(model.branches) > 0)
    assert set(model.branches) == set(cfg.MODEL.DAAF.BRANCHES)
    model.eval()
    with torch.no_grad():
        embedding = model(torch.randint(0, 256, (2, 3, 64, 32), dtype=torch.uint8))
    expected_dim = (
        cfg.MODEL.HEADS.EMBEDDING_DIM if cfg.MODEL.HEADS.NAME == "TriNetHead" else 2048 if cfg.MODEL.BACKBONE.DEPTH >= 50 else 512
    )
    assert embedding.shape == (2, expected_dim)


@pytest.mark.parametrize("path", PSEUDO_LABEL_CONFIGS, ids=rel)
def test_pseudo_label_configs_name_registered_labelers_and_datasets(path):
    cfg = load(path)
    assert cfg.PSEUDO_LABEL.NAME in PSEUDO_LABELER_REGISTRY
    names = (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST)
    assert names and all(n in DATASET_REGISTRY for n in names)
    assert set(cfg.PSEUDO_LABEL.SPLITS) <= {"train", "query", "gallery"}


DAAF_VARIANTS = [p for p in MODEL_CONFIGS if load(p).MODEL.DAAF.BRANCHES]


@pytest.mark.parametrize("path", DAAF_VARIANTS, ids=rel)
def test_daaf_variant_trains_a_few_steps_on_synthetic_data(path, tiny_cfg, tmp_path):
    from daaf.engine import DefaultTrainer

    cfg = load(path)
    cfg.merge_from_list(
        [
            "MODEL.DEVICE",
            "cpu",
            "MODEL.BACKBONE.PRETRAIN",
            "False",
            "MODEL.BACKBONE.DEPTH",
            "18",
            "MODEL.HEADS.NUM_CLASSES",
            "0",
            "DATASETS.ROOT",
            tiny_cfg.DATASETS.ROOT,
            "DATASETS.TRAIN",
            "('SyntheticPersons',)",
            "DATASETS.TEST",
            "()",
            "INPUT.SIZE_TRAIN",
            "[64, 32]",
            "INPUT.SIZE_TEST",
            "[64, 32]",
            "INPUT.CROP_FROM",
            "[72, 36]",
            "DATALOADER.NUM_WORKERS",
            "0",
            "SOLVER.IMS_PER_BATCH",
            "8",
            "SOLVER.SCHEDULE_UNIT",
            "iteration",
            "SOLVER.MAX_ITER",
            "3",
            "SOLVER.DECAY_START",
            "1",
            "SOLVER.STEPS",
            "(2,)",
            "SOLVER.WARMUP_ITERS",
            "1",
            "SOLVER.CHECKPOINT_PERIOD",
            "100",
            "OUTPUT_DIR",
            str(tmp_path),
            "LOG_PERIOD",
            "1",
            "SEED",
            "0",
        ]
    )
    trainer = DefaultTrainer(cfg)
    trainer.train()
    with open(os.path.join(tmp_path, "metrics.json")) as f:
        last = [json.loads(line) for line in f if "total_loss" in line][-1]
    assert last["iteration"] == 2
    for branch in cfg.MODEL.DAAF.BRANCHES:
        assert math.isfinite(last[f"loss_{branch.lower()}"]) and last[f"loss_{branch.lower()}"] > 0


def test_labels_dir_is_under_the_datasets_root_unless_absolute(tmp_path):
    from daaf.data import resolve_labels_dir

    cfg = get_cfg()
    cfg.DATASETS.ROOT = str(tmp_path / "data")
    assert resolve_labels_dir(cfg) == str(tmp_path / "data" / "daaf_labels")
    cfg.DATASETS.LABELS_DIR = "daaf_labels_detectron2"
    assert resolve_labels_dir(cfg) == str(tmp_path / "data" / "daaf_labels_detectron2")
    cfg.DATASETS.LABELS_DIR = str(tmp_path / "elsewhere")
    assert resolve_labels_dir(cfg) == str(tmp_path / "elsewhere")
    # the shipped labelling configs write where training configs on the same root read
    for path in PSEUDO_LABEL_CONFIGS:
        labels_dir = load(path).DATASETS.LABELS_DIR
        assert not os.path.isabs(labels_dir), f"{rel(path)}: LABELS_DIR should be relative to the datasets root"
