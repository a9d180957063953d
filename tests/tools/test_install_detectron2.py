"""tools/install_detectron2.sh refuses what it cannot build from with one line, before any pip
call: a source that is not detectron2's, a missing constraints file, no C++ compiler."""

import os
import subprocess
import sys

from conftest import REPO

SCRIPT = os.path.join(REPO, "tools", "install_detectron2.sh")


def run(*args, **env):
    environment = dict(os.environ, PYTHON=sys.executable, **env)
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, timeout=120, env=environment)


def test_bad_sources_and_options_are_one_line(tmp_path):
    cases = {
        (str(tmp_path / "missing.tar.gz"),): f"SOURCE '{tmp_path / 'missing.tar.gz'}' is neither a file, a folder nor a git URL",
        (str(tmp_path),): f"SOURCE folder '{tmp_path}' has no setup.py (expected detectron2's source tree)",
        (os.path.join(REPO, "README.md"),): "is not a .tar.gz, .tgz or .zip source archive",
        ("--constraints", str(tmp_path / "none.txt"), str(tmp_path)): "--constraints needs a file",
        ("--nope",): "unknown option '--nope'",
    }
    for args, message in cases.items():
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: install_detectron2.sh: ") and message in line, (args, line)


def test_no_compiler_is_said_before_building(tmp_path):
    (tmp_path / "setup.py").write_text("raise SystemExit('must not be run')\n")
    result = run(str(tmp_path), CXX=str(tmp_path / "no-such-c++"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: install_detectron2.sh: no C++ compiler found")
    assert "must not be run" not in result.stdout + result.stderr
