"""The bad-input corpus: every case a user can get wrong, as (tool, command line, expected last
line), run the way the command runs it. Each must end in exactly one ``error: ...`` line and exit
code 2, without a traceback. A new tool joins by adding its rows to CASES."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from daaf.engine import default_argument_parser, launch_cli

from conftest import load_tool, png_declaring, run_tool_reporting_errors


class Evil:
    """Unpickling this runs code: it creates the file it names."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.fixture(scope="module")
def files(trained, synthetic_root, tmp_path_factory, request):
    """The inputs of the cases: the trained model's files and a few bad ones."""
    folder = tmp_path_factory.mktemp("bad_input")
    evil = folder / "evil.pth"
    torch.save({"model": torch.load(trained["weights"], weights_only=True)["model"], "extra": Evil(folder / "PWNED")}, evil)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "a_file").write_text("not a folder")
    (folder / "export_with_notes").mkdir()
    (folder / "export_with_notes" / "notes.txt").write_text("mine")
    # a test set whose only query's identity the gallery shows from the query's own camera only
    shop = folder / "shop"
    shop.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        shutil.copy(trained["query"][0], shop / name)
    (shop / "query.csv").write_text("path,pid,camid\na.jpg,1,0\n")
    (shop / "gallery.csv").write_text("path,pid,camid\nb.jpg,1,0\nc.jpg,2,1\n")
    # a test set one of whose gallery images is an empty file
    blank = folder / "blank"
    blank.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(trained["query"][0], blank / name)
    (blank / "empty.jpg").write_bytes(b"")
    (blank / "query.csv").write_text("path,pid,camid\na.jpg,1,0\n")
    (blank / "gallery.csv").write_text("path,pid,camid\nb.jpg,1,1\nempty.jpg,2,1\n")
    png_declaring(folder / "bomb.png", 60_000, 60_000)
    # a dataset one of whose training images no longer has its label's size (found inside the loop)
    resized_root = folder / "resized_root"
    shutil.copytree(synthetic_root, resized_root)
    train_dir = resized_root / "SyntheticPersons" / "bounding_box_train"
    resized = sorted(train_dir.iterdir())
    import cv2

    for image_path in resized:
        cv2.imwrite(str(image_path), cv2.resize(cv2.imread(str(image_path)), (30, 70)))
    ranks = {
        k: np.zeros(n) for k, n in [("query_pids", 3), ("query_camids", 2), ("query_ap", 2), ("gallery_pids", 4), ("gallery_camids", 4)]
    }
    ranks.update(
        indices=np.zeros((2, 4), np.int64), distances=np.zeros((2, 4)), query_files=np.array(["q"] * 2), gallery_files=np.array(["g"] * 4)
    )
    np.savez(folder / "ranks.npz", **ranks)
    finished = folder / "finished_run"  # the record an earlier training left
    finished.mkdir()
    shutil.copy(trained["weights"], finished / "model_final.pth")
    (finished / "last_checkpoint").write_text("model_final.pth")
    (finished / "metrics.json").write_text('{"iteration": 0, "total_loss": 1.0}\n')
    # label files with one bad entry each
    with open(os.path.join(synthetic_root, "daaf_labels", "SyntheticPersons_train.json")) as fh:
        labels = json.load(fh)
    corruptions = {
        "image_number": lambda c: c["images"].__setitem__(0, 7),
        "garbage_rle": lambda c: c["annotations"][0]["segmentation"].__setitem__("counts", "garbage!!"),
        "nan_keypoint": lambda c: c["annotations"][0]["keypoints"].__setitem__(0, float("nan")),
    }
    for kind, corrupt in corruptions.items():
        content = json.loads(json.dumps(labels))
        corrupt(content)
        (folder / f"labels_{kind}").mkdir()
        (folder / f"labels_{kind}" / "SyntheticPersons_train.json").write_text(json.dumps(content))
    (folder / "configs").mkdir()
    (folder / "configs" / "list.yaml").write_text("- SOLVER\n- MODEL\n")
    (folder / "configs" / "a.yaml").write_text('_BASE_: "b.yaml"\n')
    (folder / "configs" / "b.yaml").write_text('_BASE_: "a.yaml"\n')
    (folder / "configs" / "nan_lr.yaml").write_text(f'_BASE_: "{trained["base"]}"\nSOLVER:\n  BASE_LR: .nan\n')
    # a training that holds its OUTPUT_DIR while the cases run
    held = folder / "held_run"
    held.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from daaf.engine.run_folder import claim_run_folder; import time; claim_run_folder({str(held)!r}, resume=False); print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    request.addfinalizer(lambda: (holder.kill(), holder.wait()))
    assert holder.stdout.readline().strip() == "held"
    return {
        "held_run": str(held),
        "holder_pid": holder.pid,
        "label_image": labels["images"][0]["file_name"],
        "finished_run": str(finished),
        "blank": str(blank),
        "resized_root": str(resized_root),
        "bomb": str(folder / "bomb.png"),
        **trained,
        "folder": str(folder),
        "evil": str(evil),
        "marker": str(folder / "PWNED"),
        "empty_image": str(folder / "empty.jpg"),
        "a_file": str(folder / "a_file"),
        "export_with_notes": str(folder / "export_with_notes"),
        "shop": str(shop),
        "ranks": str(folder / "ranks.npz"),
        "root": synthetic_root,
        "other_weights": str(folder / "other.pth"),
    }


def other_architecture_weights(f):
    """A checkpoint of another architecture (BoT's BNNeck head) for the trained TriNet config."""
    from daaf.modeling import build_model
    from daaf.utils.checkpoint import DAAFCheckpointer

    cfg = f["base_cfg"].clone()
    cfg.MODEL.HEADS.NAME = "BNNeckHead"
    cfg.MODEL.HEADS.NUM_CLASSES = 8
    DAAFCheckpointer(build_model(cfg), f["folder"]).save("other")
    return f["other_weights"]


# the arguments a tool needs before the one a case gets wrong
REQUIRED = {
    "search": ["--config-file", "c.yaml", "--query", "q.jpg", "--gallery", "g/"],
    "visualize_ranked_list": ["--ranks", "r.npz"],
    "visualize_attention": ["--config-file", "c.yaml", "--input", "x.jpg"],
}


def train_net(f, *argv, output="out"):
    return ["--config-file", f["base"], *argv, "OUTPUT_DIR", os.path.join(f["folder"], output) if output else output]


# id -> (tool, command line from the files, expected error line (after "error: "), or a callable
# checking it). Tools run in this process as their command line runs them.
CASES = {
    "weights that unpickle code": (
        "extract_features",
        lambda f: ["--config-file", f["base"], "--input", f["query"][0], "--output", f["folder"] + "/x.npz", "MODEL.WEIGHTS", f["evil"]],
        lambda f, line: (
            line.startswith(f"{f['evil']}: refused to load: unpickling it would build ")
            and line.endswith("and a file that asks for that can run code; if you trust the file, set MODEL.TRUSTED_WEIGHTS True")
        ),
    ),
    "corrupt image read by 2 loader workers": (
        "extract_features",
        lambda f: [
            "--config-file",
            f["base"],
            "--input",
            f["empty_image"],
            "--output",
            f["folder"] + "/x.npz",
            "--workers",
            "2",
            "MODEL.WEIGHTS",
            f["weights"],
            "DATALOADER.CHECK_IMAGES",  # the workers read it: the check before would name it first
            "False",
        ],  # fmt: skip
        lambda f, line: line == f"cannot decode image (empty or corrupt file): {f['empty_image']}",
    ),
    "--eval-only with a checkpoint of another architecture": (
        "train_net",
        lambda f: train_net(f, "--eval-only", "MODEL.WEIGHTS", other_architecture_weights(f)),
        lambda f, line: (
            line.startswith(f"{f['other_weights']} does not fit the config: ") and "is it the config it was trained with?" in line
        ),
    ),
    "--eval-only without weights": (
        "train_net",
        lambda f: train_net(f, "--eval-only"),
        lambda f, line: line.startswith("--eval-only evaluates MODEL.WEIGHTS, which is empty"),
    ),
    "OUTPUT_DIR is a file": (
        "train_net",
        lambda f: train_net(f, output=f["a_file"]),
        lambda f, line: line == f"OUTPUT_DIR {f['a_file']}: is a file; expected a folder (or a path that does not exist yet)",
    ),
    "OUTPUT_DIR cannot be written": (
        "train_net",
        lambda f: train_net(f, output="/proc/daaf-output"),
        lambda f, line: line.startswith("OUTPUT_DIR /proc/daaf-output: cannot write there ("),
    ),
    "a DAAF config whose dataset folder is missing": (
        "train_net",
        lambda f: [
            "--config-file",
            f["daaf"],
            "DATASETS.TRAIN",
            "('SyntheticPersons',)",
            "DATASETS.ROOT",
            f["folder"] + "/nowhere",
            "OUTPUT_DIR",
            f["folder"] + "/o2",
        ],
        lambda f, line: line.startswith(f"SyntheticPersons: dataset folder not found: {f['folder']}/nowhere/SyntheticPersons"),
    ),
    "a test set without a valid query": (
        "train_net",
        lambda f: train_net(
            f, "--eval-only", "MODEL.WEIGHTS", f["weights"], "DATASETS.CUSTOM", f"['Shop={f['shop']}']", "DATASETS.TEST", "('Shop',)"
        ),  # fmt: skip
        lambda f, line: (
            line == "Shop: none of its 1 queries has a true match in the gallery (its identity seen by another camera); nothing to evaluate"
        ),
    ),
    "export --output is a file": (
        "export_model",
        lambda f: ["--config-file", f["base"], "--output", f["a_file"], "MODEL.WEIGHTS", f["weights"]],
        lambda f, line: line == f"--output {f['a_file']}: is a file; give a folder (it is replaced by the export as a whole)",
    ),
    "export --output holds the user's files": (
        "export_model",
        lambda f: ["--config-file", f["base"], "--output", f["export_with_notes"], "MODEL.WEIGHTS", f["weights"]],
        lambda f, line: line.startswith(f"--output {f['export_with_notes']}: holds files an export does not write (notes.txt)"),
    ),
    "export --opset the exporter cannot write": (
        "export_model",
        lambda f: ["--config-file", f["base"], "--output", f["folder"] + "/exp", "--opset", "99", "MODEL.WEIGHTS", f["weights"]],
        lambda f, line: line.startswith("--opset 99: the ONNX exporter writes opsets 7 to "),
    ),
    # checked before any work: the config file named does not even exist
    "extract_features --output is a folder": (
        "extract_features",
        lambda f: ["--config-file", "no.yaml", "--input", "x.jpg", "--output", f["folder"]],
        lambda f, line: line == f"--output {f['folder']}: is a folder; give a file path ending in .npz",
    ),
    "extract_features --output of another kind": (
        "extract_features",
        lambda f: ["--config-file", "no.yaml", "--input", "x.jpg", "--output", "features.csv"],
        lambda f, line: line == "--output features.csv: expected a file name ending in .npz",
    ),
    "search --output of another kind": (
        "search",
        lambda f: ["--config-file", "no.yaml", "--query", "q.jpg", "--gallery", "g", "--output", "ranked.gif"],
        lambda f, line: line == "--output ranked.gif: expected a file name ending in .png or .jpg or .jpeg",
    ),
    **{
        f"{tool} {flag} {value}": (
            tool,
            lambda f, tool=tool, flag=flag, value=value: [*REQUIRED[tool], flag, value],
            lambda f, line, flag=flag, value=value: line == f"argument {flag}: expected a positive integer, got '{value}'",
        )
        for tool, flag in [
            ("search", "--top-k"),
            ("search", "--max-rows"),
            ("visualize_ranked_list", "--top-k"),
            ("visualize_ranked_list", "--num-queries"),
            ("visualize_attention", "--num-images"),
        ]
        for value in ("0", "-3", "two")
    },
    **{
        f"train_net {flag} {value}": (
            "train_net",
            lambda f, flag=flag, value=value: train_net(f, flag, value),
            lambda f, line, flag=flag, value=value, what=what: line == f"argument {flag}: expected {what}, got '{value}'",
        )
        for flag, value, what in [
            ("--num-gpus", "0", "a positive integer"),
            ("--num-gpus", "-1", "a positive integer"),
            ("--num-machines", "0", "a positive integer"),
            ("--machine-rank", "-1", "an integer >= 0"),
        ]
    },
    "train_net --machine-rank beyond --num-machines": (
        "train_net",
        lambda f: train_net(f, "--num-machines", "2", "--machine-rank", "2"),
        lambda f, line: line == "--machine-rank 2: expected 0 to 1 (--num-machines 2)",
    ),
    "extract_features --workers -1": (
        "extract_features",
        lambda f: ["--config-file", f["base"], "--input", "x.jpg", "--output", "x.npz", "--workers", "-1"],
        lambda f, line: line == "argument --workers: expected an integer >= 0, got '-1'",
    ),
    **{
        f"train_net {key} {value}": (
            "train_net",
            lambda f, key=key, value=value: train_net(f, key, value),
            lambda f, line, message=message: line == message,
        )
        for key, value, message in [
            ("SOLVER.MAX_ITER", "0", "SOLVER.MAX_ITER: 0 is not allowed; expected an integer >= 1"),
            ("SOLVER.MAX_ITER", "-5", "SOLVER.MAX_ITER: -5 is not allowed; expected an integer >= 1"),
            ("DATALOADER.NUM_WORKERS", "-1", "DATALOADER.NUM_WORKERS: -1 is not allowed; expected an integer >= 0"),
            ("INPUT.SIZE_TRAIN", "(0, 0)", "INPUT.SIZE_TRAIN: [0, 0] is not allowed; expected a list of 2 values, each an integer >= 1"),
        ]
    },
    "extract_features of a decompression bomb": (
        "extract_features",
        lambda f: ["--config-file", f["base"], "--input", f["bomb"], "--output", f["folder"] + "/x.npz", "MODEL.WEIGHTS", f["weights"]],
        lambda f, line: (
            line
            == f"1 of 1 input images cannot be read: {f['bomb']} (declares 60000 x 60000 pixels, more than INPUT.MAX_IMAGE_PIXELS (100,000,000)); replace or remove them"
        ),
    ),
    "--eval-only with an empty gallery image": (
        "train_net",
        lambda f: train_net(
            f, "--eval-only", "MODEL.WEIGHTS", f["weights"], "DATASETS.CUSTOM", f"['Blank={f['blank']}']", "DATASETS.TEST", "('Blank',)"
        ),  # fmt: skip
        lambda f, line: line == f"1 of 3 Blank test images cannot be read: {f['blank']}/empty.jpg (empty file); replace or remove them",
    ),
    "a training image of another size than its label, found in the training loop": (
        "train_net",
        lambda f: [
            "--config-file",
            f["daaf"],
            "DATASETS.TRAIN",
            "('SyntheticPersons',)",
            "DATASETS.ROOT",
            f["resized_root"],
            "DATALOADER.NUM_WORKERS",
            "0",
            "SOLVER.IMS_PER_BATCH",
            "8",
            "SOLVER.MAX_ITER",
            "2",
            "INPUT.SIZE_TRAIN",
            "[64, 32]",
            "OUTPUT_DIR",
            f["folder"] + "/resized_out",
        ],  # fmt: skip
        lambda f, line: "label mask size" in line and "differs from the image size (70, 30)" in line,
    ),
    "--config-file is a folder": (
        "train_net",
        lambda f: ["--config-file", f["folder"]],
        lambda f, line: line == f"{f['folder']}: is a folder; expected a YAML config file",
    ),
    "a YAML config that is a list": (
        "train_net",
        lambda f: ["--config-file", f["folder"] + "/configs/list.yaml"],
        lambda f, line: line == f"{f['folder']}/configs/list.yaml: expected a mapping of config keys (KEY: value), got a YAML list",
    ),
    "a _BASE_ cycle": (
        "train_net",
        lambda f: ["--config-file", f["folder"] + "/configs/a.yaml"],
        lambda f, line: line.startswith(f"{f['folder']}/configs/a.yaml: _BASE_ files include each other: "),
    ),
    "SOLVER.BASE_LR .nan in a YAML file": (
        "train_net",
        lambda f: ["--config-file", f["folder"] + "/configs/nan_lr.yaml", "OUTPUT_DIR", f["folder"] + "/nan_out"],
        lambda f, line: line == "SOLVER.BASE_LR: nan is not allowed; expected a number > 0",
    ),
    **{
        f"a label file with {what}": (
            "train_net",
            lambda f, kind=kind: [
                "--config-file",
                f["daaf"],
                "DATASETS.TRAIN",
                "('SyntheticPersons',)",
                "DATASETS.ROOT",
                f["root"],
                "DATASETS.LABELS_DIR",
                f"{f['folder']}/labels_{kind}",
                "OUTPUT_DIR",
                f"{f['folder']}/out_{kind}",
            ],  # fmt: skip
            lambda f, line, kind=kind, field=field: (
                line.startswith(f"{f['folder']}/labels_{kind}/SyntheticPersons_train.json: ")
                and field.format(image=f["label_image"]) in line
            ),
        )
        for what, kind, field in [
            ("a number for an image entry", "image_number", "images[0]: expected an object"),
            ("garbage RLE counts", "garbage_rle", "image {image}: segmentation: counts hold characters outside"),
            ("a NaN keypoint", "nan_keypoint", "image {image}: keypoints: keypoint nose is not finite"),
        ]
    },
    "a second training into a folder another one writes to": (
        "train_net",
        lambda f: train_net(f, "--resume", output=f["held_run"]),
        lambda f, line: line.startswith(f"OUTPUT_DIR {f['held_run']}: another training writes there (process {f['holder_pid']} on "),
    ),
    "a new training into a finished run's OUTPUT_DIR": (
        "train_net",
        lambda f: train_net(f, output=f["finished_run"]),
        lambda f, line: (
            line.startswith(f"OUTPUT_DIR {f['finished_run']}: holds an earlier run (last_checkpoint, metrics.json, model_final.pth)")
            and "--resume goes on with it, --start-over moves it" in line
        ),
    ),
    "ranked list of inconsistent arrays": (
        "visualize_ranked_list",
        lambda f: ["--ranks", f["ranks"], "--output", f["folder"] + "/r.png"],
        lambda f, line: line == f"{f['ranks']}: query_pids has shape (3,), expected (2) for 2 queries and 4 gallery images",
    ),
}


def run(tool, argv, capsys):
    """(exit code, stderr) of ``tool`` run with ``argv`` as its command line runs it."""
    try:
        if tool == "train_net":
            return launch_cli(load_tool("train_net").main, default_argument_parser().parse_args(argv)), capsys.readouterr().err
        return run_tool_reporting_errors(capsys, tool, *argv)
    except SystemExit as e:  # argparse's own errors
        return e.code, capsys.readouterr().err


def _user_files(files):
    """{path: bytes} of the case inputs that are files, and of the finished run's files."""
    paths = [v for v in files.values() if isinstance(v, str) and os.path.isfile(v)]
    paths += [os.path.join(files["finished_run"], n) for n in os.listdir(files["finished_run"]) if n != ".daaf-run.lock"]
    return {p: pathlib.Path(p).read_bytes() for p in paths}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_error_line(case, files, capsys):
    tool, argv, expected = CASES[case]
    command_line = argv(files)
    before = _user_files(files)
    code, err = run(tool, command_line, capsys)
    assert _user_files(files) == before  # the user's files are as they were
    lines = err.strip().splitlines()
    assert code == 2 and lines, err
    assert "Traceback" not in err and "Training stopped" not in err, err
    # "error: ...", or argparse's "<program>: error: ..." after its usage lines
    prefix, found, message = lines[-1].partition("error: ")
    assert found and (prefix == "" or prefix.endswith(": ")), lines[-1]
    assert expected(files, message), lines[-1]
    assert not os.path.exists(files["marker"])  # nothing in a file ran


def test_trusted_weights_opt_in_loads_a_pickle_that_needs_it(files, capsys):
    """The opt-in exists and does what it says (here: runs the file's code, as warned)."""
    out = os.path.join(files["folder"], "trusted.npz")
    argv = [
        "--config-file",
        files["base"],
        "--input",
        files["query"][0],
        "--output",
        out,
        "MODEL.WEIGHTS",
        files["evil"],
        "MODEL.TRUSTED_WEIGHTS",
        "True",
    ]
    code, _ = run_tool_reporting_errors(capsys, "extract_features", *argv)
    assert code == 0 and os.path.exists(out) and os.path.exists(files["marker"])
    os.remove(files["marker"])


def test_the_corpus_covers_every_tool():
    tools = {os.path.splitext(n)[0] for n in os.listdir(os.path.join(os.path.dirname(__file__), "..", "..", "tools")) if n.endswith(".py")}
    covered = {tool for tool, _, _ in CASES.values()}
    # demo, check_labels and compare_runs have their own error tests (test_demo.py, tests/pseudo_label, test_compare_runs.py)
    assert tools - covered <= {"demo", "check_labels", "compare_runs"}, sorted(tools - covered)
