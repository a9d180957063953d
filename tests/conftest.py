import json
import os
import subprocess
import sys
import tempfile

import pytest

# The repository and this folder (pytest puts both on sys.path: setup.cfg's pythonpath), for the
# tests that run a tool, a config or a helper module (toy_components.py) by its path.
TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)


def _detectron2_import_error():
    """None when detectron2 imports, else why it does not."""
    try:
        import detectron2  # noqa: F401
    except ImportError as e:
        return str(e)
    return None


DETECTRON2_MISSING_REASON = "detectron2 is not installed (optional; bash tools/install_detectron2.sh builds it into the environment)"


def pytest_configure(config):
    # what the project caches (image checks, compiled kernels) goes to a folder of this run, not the
    # user's home; the xdist workers of one run share it, so each numba kernel compiles once a run
    # (seconds each) rather than once in every worker and in every process a test starts first
    if "DAAF_CACHE_DIR" not in os.environ:
        run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
        if run_id:
            folder = os.path.join(tempfile.gettempdir(), f"daaf-test-cache-{run_id}")
            os.makedirs(folder, exist_ok=True)
        else:
            folder = tempfile.mkdtemp(prefix="daaf-test-cache-")
        os.environ["DAAF_CACHE_DIR"] = folder
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # one thread per worker, for the worker and the processes its tests start: with 2 workers
        # on 2 cores, more threads only oversubscribe the cores
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
    config.addinivalue_line("markers", "detectron2: needs detectron2; skipped without it, unless DAAF_REQUIRE_DETECTRON2=1")


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``detectron2`` when it does not import; with DAAF_REQUIRE_DETECTRON2=1
    (CI, after building it) stop instead, so that a broken build cannot pass as skips."""
    needing = [item for item in items if item.get_closest_marker("detectron2")]
    if not needing:
        return
    error = _detectron2_import_error()
    if error is None:
        return
    if os.environ.get("DAAF_REQUIRE_DETECTRON2") == "1":
        raise pytest.UsageError(f"DAAF_REQUIRE_DETECTRON2=1 but detectron2 does not import ({error}); {len(needing)} tests need it")
    for item in needing:
        item.add_marker(pytest.mark.skip(reason=DETECTRON2_MISSING_REASON))


@pytest.fixture
def cpu_processes(monkeypatch):
    """The processes this test starts (spawned workers, subprocesses) run on the CPU with gloo,
    also on a machine with a GPU: where CUDA is visible the launcher gives each process a GPU
    (NCCL), and a 2-process test on a 1-GPU machine would be refused."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture
def hide_detectron2(monkeypatch):
    """detectron2 hidden in this process, as on a machine without it: every ``import detectron2``
    raises ModuleNotFoundError (tests/without_detectron2.py does the same for subprocesses)."""
    monkeypatch.setitem(sys.modules, "detectron2", None)


# What every CPU test model starts from: ResNet-18 without ImageNet weights.
CPU_R18 = {"MODEL.DEVICE": "cpu", "MODEL.BACKBONE.DEPTH": 18, "MODEL.BACKBONE.PRETRAIN": False}


def key_values(overrides: dict) -> list:
    """{"KEY": value} as the flat ["KEY", "value", ...] list of config overrides (command lines,
    ``merge_from_list``)."""
    return [str(x) for pair in overrides.items() for x in pair]


def cpu_cfg(**overrides):
    """get_cfg() with CPU_R18 and ``overrides`` (keys with "__" for ".": MODEL__HEADS__NAME=...)."""
    from daaf.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_list(key_values({**CPU_R18, **{k.replace("__", "."): v for k, v in overrides.items()}}))
    return cfg


def tiny_synthetic_config(**overrides):
    from daaf.data.synthetic import SyntheticConfig

    values = dict(
        num_train_ids=8,
        num_test_ids=6,
        num_cameras=3,
        min_images_per_id=4,
        max_images_per_id=6,
        num_distractors=4,
        num_junk=2,
        num_partial_ids=3,
        seed=0,
    )
    values.update(overrides)
    return SyntheticConfig(**values)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A tiny synthetic dataset (8 train ids, 6 test ids, 3 cameras) with its label files."""
    from daaf.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("datasets"))
    generate_synthetic_dataset(root, tiny_synthetic_config(), progress=False)
    return root


@pytest.fixture
def tiny_cfg(synthetic_root, tmp_path):
    """A CPU config on the tiny synthetic data: ResNet-18 TriNet, 64x32 input, 2 iterations."""
    return cpu_cfg(
        **{
            "DATASETS.ROOT": synthetic_root,
            "DATASETS.TRAIN": "('SyntheticPersons',)",
            "DATASETS.TEST": "('SyntheticPersons',)",
            "INPUT.SIZE_TRAIN": "[64, 32]",
            "INPUT.SIZE_TEST": "[64, 32]",
            "DATALOADER.NUM_WORKERS": 0,
            "SOLVER.IMS_PER_BATCH": 8,
            "SOLVER.MAX_ITER": 2,
            "SOLVER.CHECKPOINT_PERIOD": 1000,
            "TEST.IMS_PER_BATCH": 16,
            "OUTPUT_DIR": tmp_path / "out",
            "SEED": 0,
            "LOG_PERIOD": 1,
        }
    )


def make_batch(images, pids=None, **label_fields):
    """A ReIDBatch of uint8 ``images`` (B, 3, H, W) with ``pids`` (default 0..B-1), camera 0, empty
    file names and, when given, PersonLabels of ``label_fields`` (has_label, masks, keypoints)."""
    import torch

    from daaf.data import PersonLabels, ReIDBatch

    b = len(images)
    pids = torch.arange(b) if pids is None else torch.as_tensor(pids)
    labels = PersonLabels(**label_fields) if label_fields else None
    return ReIDBatch(images=images, pids=pids, camids=torch.zeros(b, dtype=torch.int64), file_names=[""] * b, person_labels=labels)


def child_pids(pid):
    """The processes ``pid`` started (Linux /proc)."""
    import glob

    children = set()
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        with open(task) as f:
            children |= {int(c) for c in f.read().split()}
    return children


def is_running(pid):
    """False once ``pid`` is gone or a zombie (nobody may reap it in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def load_tool(name, folder="tools"):
    """A script of ``folder`` (tools/, projects/DAAF/analysis/, ...) as a module, to call its
    ``main`` in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(REPO, folder, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(name, *argv, folder="tools"):
    tool = load_tool(name, folder)
    return tool.main(tool.parser().parse_args(list(argv)))


def run_tool_reporting_errors(capsys, name, *argv):
    """A tool's main in this process as its command line runs it: (exit code, stderr)."""
    from daaf.engine import run_reporting_user_errors

    tool = load_tool(name)
    try:
        code = run_reporting_user_errors(tool.main, tool.parser().parse_args(list(argv))) or 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def run_cli(name, *argv):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", f"{name}.py"), *argv], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, synthetic_root):
    """A DAAF config file + its checkpoint, and the base config file (no branches)."""
    import torch

    from daaf.config import get_cfg
    from daaf.data import get_dataset
    from daaf.modeling import build_model
    from daaf.utils.checkpoint import DAAFCheckpointer

    folder = tmp_path_factory.mktemp("trained")
    cfg = get_cfg()
    cfg.merge_from_list(
        key_values(
            {
                "MODEL.DEVICE": "cpu",
                "MODEL.BACKBONE.DEPTH": 18,
                "MODEL.BACKBONE.PRETRAIN": False,
                "MODEL.HEADS.MID_DIM": 64,
                "MODEL.HEADS.EMBEDDING_DIM": 16,
                "INPUT.SIZE_TEST": "[64, 32]",
                "INPUT.SIZE_TRAIN": "[64, 32]",
                "DATASETS.ROOT": synthetic_root,
                "DATASETS.TEST": "('SyntheticPersons',)",
                "TEST.IMS_PER_BATCH": 8,
            }
        )
    )
    base_cfg = cfg.clone()
    cfg.MODEL.DAAF.BRANCHES = ["HAB", "PAB"]
    torch.manual_seed(0)
    model = build_model(cfg)
    weights = str(folder / "model_final.pth")
    DAAFCheckpointer(model, str(folder)).save("model_final")
    paths = {}
    for name, c in (("daaf", cfg), ("base", base_cfg)):
        paths[name] = str(folder / f"{name}.yaml")
        with open(paths[name], "w") as f:
            f.write(c.dump())
    query = sorted(r["file_name"] for r in get_dataset("SyntheticPersons", synthetic_root).query)
    return {"cfg": cfg, "base_cfg": base_cfg, "model": model, "weights": weights, "query": query, **paths}


def label_file_content(path):
    """A label file without its creation time, for comparing two labelling runs."""
    with open(path) as f:
        content = json.load(f)
    del content["info"]["created"]
    return content


def png_declaring(path, width, height):
    """A valid little PNG whose header declares ``width`` x ``height`` grey pixels (the few bytes
    of a decompression bomb: what the check reads is the header)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return str(path)
