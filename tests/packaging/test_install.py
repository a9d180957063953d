"""The package installs from a wheel into a fresh virtual environment and every console tool runs
there (its --help). The dependencies (torch, ...) come from this environment through PYTHONPATH,
since installing them takes minutes; daaf itself must come from the fresh environment's wheel."""

import os
import subprocess
import sys
import sysconfig

import pytest

from conftest import REPO

CONSOLE_TOOLS = [
    "daaf-train",
    "daaf-extract-features",
    "daaf-search",
    "daaf-export",
    "daaf-visualize-attention",
    "daaf-visualize-ranked-list",
    "daaf-check-labels",
    "daaf-compare-runs",
]


def pyproject_scripts():
    import tomllib

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


def test_the_console_tools_are_those_the_package_declares():
    assert sorted(pyproject_scripts()) == sorted(CONSOLE_TOOLS)


def test_a_fresh_venv_installs_the_wheel_and_runs_every_console_tool(tmp_path):
    wheel_dir = tmp_path / "wheel"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheel_dir), REPO],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if build.returncode != 0 and "No module named pip" in build.stderr:
        pytest.skip("pip is not installed in this environment")
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheel_dir.glob("daaf_reid-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}  # the dependencies, not daaf
    where = subprocess.run([str(python), "-c", "import daaf; print(daaf.__file__)"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    running = {  # all at once: each spends its time importing torch
        tool: subprocess.Popen(
            [str(venv / "bin" / tool), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env
        )
        for tool in CONSOLE_TOOLS
    }
    for tool, proc in running.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0 and out.startswith(f"usage: {tool} "), f"{tool}: {err[-1500:]}"
