import os
import tempfile

import pytest
import torch

from daaf.utils import file_io
from daaf.utils.checkpoint import DAAFCheckpointer
from daaf.utils.errors import UserError
from daaf.utils.file_io import replaced_folder, writable_folder


def test_a_full_disk_is_one_line_naming_the_checkpoint_and_the_old_file_stays(tmp_path, monkeypatch):
    model = torch.nn.Linear(64, 64)
    checkpointer = DAAFCheckpointer(model, str(tmp_path))
    checkpointer.save("model_0000009")
    before = (tmp_path / "model_0000009.pth").read_bytes()
    real_mkstemp = tempfile.mkstemp

    def on_a_full_disk(*args, **kwargs):  # the temporary file's writes go to /dev/full (ENOSPC)
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(file_io.tempfile, "mkstemp", on_a_full_disk)
    with pytest.raises(UserError) as info:
        checkpointer.save("model_0000009")
    assert str(info.value) == f"cannot write {tmp_path / 'model_0000009.pth'}: no space left on device (the file was left as it was)"
    assert (tmp_path / "model_0000009.pth").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth"]  # no partial file left


def test_replaced_folder_swaps_the_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "model.onnx").write_text("old")
    (target / "export.json").write_text("old")
    with pytest.raises(KeyboardInterrupt):  # killed while writing the new export
        with replaced_folder(str(target)) as new:
            (tmp_path / new / "model.onnx").write_text("new")
            raise KeyboardInterrupt
    assert sorted(os.listdir(target)) == ["export.json", "model.onnx"] and (target / "model.onnx").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["export"]
    with replaced_folder(str(target)) as new:
        (tmp_path / new / "model.onnx").write_text("new")
    assert os.listdir(target) == ["model.onnx"] and (target / "model.onnx").read_text() == "new"  # no mix
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_replaced_folder_puts_back_what_a_kill_between_its_renames_set_aside(tmp_path):
    target = tmp_path / "SyntheticPersons"
    aside = tmp_path / ".SyntheticPersons.old-abc123"  # killed after the first rename: target is gone
    (aside / "contents").mkdir(parents=True)
    (aside / "contents" / "a.jpg").write_text("old")
    (tmp_path / ".SyntheticPersons.new-def456").mkdir()  # and the new folder never got in
    with pytest.raises(RuntimeError):
        with replaced_folder(str(target)):
            raise RuntimeError("fails again")
    assert (target / "a.jpg").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["SyntheticPersons"]


def test_writable_folder_names_the_key_for_a_file_or_an_unwritable_place(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match=r"^OUTPUT_DIR .*/f: is a file; expected a folder"):
        writable_folder(str(tmp_path / "f"), "OUTPUT_DIR")
    with pytest.raises(UserError, match=r"^OUTPUT_DIR .*/f/sub: cannot write there \("):
        writable_folder(str(tmp_path / "f" / "sub"), "OUTPUT_DIR")
    assert writable_folder(str(tmp_path / "new" / "run"), "OUTPUT_DIR") == str(tmp_path / "new" / "run")
    assert os.listdir(tmp_path / "new" / "run") == []  # the probe file is gone


def test_a_full_disk_met_anywhere_in_a_tool_is_one_line(capsys):
    from daaf.engine import run_reporting_user_errors

    def writes_a_log_line():
        with open("/dev/full", "w") as f:
            f.write("x" * 10)

    with pytest.raises(SystemExit) as exit_info:
        run_reporting_user_errors(writes_a_log_line)
    assert exit_info.value.code == 2 and capsys.readouterr().err == "error: no space left on device\n"
