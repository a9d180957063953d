"""What a user without detectron2 gets, checked whether or not detectron2 is installed here: each
command runs in a process where detectron2 is hidden (tests/without_detectron2.py)."""

import os
import re
import subprocess
import sys

from daaf.utils.detectron2_zoo import DETECTRON2_INSTALL_HINT

from conftest import DETECTRON2_MISSING_REASON, REPO

HIDE = os.path.join(REPO, "tests", "without_detectron2.py")
DETECTRON2_TEST_FILES = ["tests/pseudo_label/test_detectron2_labeler.py", "tests/modeling/test_detectron2_backbone.py"]


def run_hidden(*argv, **env):
    environment = {k: v for k, v in os.environ.items() if k != "DAAF_REQUIRE_DETECTRON2"}
    environment.update(env)
    return subprocess.run([sys.executable, HIDE, *argv], capture_output=True, text=True, timeout=300, env=environment, cwd=REPO)


def test_pseudo_label_without_detectron2_is_one_line_naming_the_install_command(synthetic_root, tmp_path):
    result = run_hidden(
        "tools/train_net.py",
        "--config-file",
        "configs/PseudoLabel/SyntheticPersons.yaml",
        "--pseudo-label",
        "DATASETS.ROOT",
        synthetic_root,
        "DATASETS.LABELS_DIR",
        str(tmp_path / "labels"),
        "OUTPUT_DIR",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == f"error: PSEUDO_LABEL.NAME Detectron2Labeler: {DETECTRON2_INSTALL_HINT}"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "labels").exists() or not os.listdir(tmp_path / "labels")


def test_detectron2_tests_are_skipped_with_the_reason_and_the_others_pass(request):
    marked = sum(
        1
        for item in request.session.items
        if item.get_closest_marker("detectron2") and os.path.relpath(str(item.fspath), REPO) in DETECTRON2_TEST_FILES
    )
    result = run_hidden("-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *DETECTRON2_TEST_FILES)
    assert result.returncode == 0, result.stdout[-3000:]
    skip_lines = re.findall(r"^SKIPPED \[(\d+)\] (\S+): (.*)$", result.stdout, flags=re.M)
    assert skip_lines and all(reason == DETECTRON2_MISSING_REASON for _, _, reason in skip_lines)
    summary = re.search(r"(\d+) passed, (\d+) skipped", result.stdout)
    assert summary, result.stdout[-2000:]
    passed, skipped = map(int, summary.groups())
    if marked:  # this session collected those files: the hidden run skips exactly their marked tests
        assert skipped == marked
    assert skipped == sum(int(n) for n, _, _ in skip_lines) and passed >= 3  # the tests of what a user without it gets


class _FakeItem:
    """The part of a pytest item the collection hook uses."""

    def __init__(self, marked):
        self.marked, self.added = marked, []

    def get_closest_marker(self, name):
        return self.marked if name == "detectron2" else None

    def add_marker(self, marker):
        self.added.append(marker)


def test_required_detectron2_that_does_not_import_stops_the_test_run(request, hide_detectron2, monkeypatch):
    import pytest

    from conftest import pytest_collection_modifyitems

    items = [_FakeItem(True), _FakeItem(False), _FakeItem(True)]
    monkeypatch.setenv("DAAF_REQUIRE_DETECTRON2", "1")
    with pytest.raises(pytest.UsageError, match=r"DAAF_REQUIRE_DETECTRON2=1 but detectron2 does not import .*; 2 tests need it"):
        pytest_collection_modifyitems(request.config, items)
    monkeypatch.delenv("DAAF_REQUIRE_DETECTRON2")
    pytest_collection_modifyitems(request.config, items)  # without the variable: skipped, with the reason
    assert [[m.kwargs["reason"] for m in item.added] for item in items] == [[DETECTRON2_MISSING_REASON], [], [DETECTRON2_MISSING_REASON]]
