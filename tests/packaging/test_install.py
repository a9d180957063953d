"""The package installs from a wheel into a fresh virtual environment and every console tool runs
there (its --help). The dependencies (torch, ...) come from this environment through PYTHONPATH,
since installing them takes minutes; daaf itself must come from the fresh environment's wheel."""

import json
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
    # Each installed wrapper is pip's from the entry point; one runs as a script, and every entry
    # point runs --help in one interpreter (each process would spend seconds importing torch).
    for tool in CONSOLE_TOOLS:
        assert os.access(venv / "bin" / tool, os.X_OK), f"{tool} is not installed in {venv / 'bin'}"
    script = subprocess.run(
        [str(venv / "bin" / "daaf-train"), "--help"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=180
    )
    assert script.returncode == 0 and script.stdout.startswith("usage: daaf-train "), script.stderr[-1500:]
    every_tool = """
import contextlib, importlib.metadata, io, json, sys
found = {}
for point in importlib.metadata.distribution("daaf-reid").entry_points:
    if point.group != "console_scripts":
        continue
    sys.argv, out = [point.name, "--help"], io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            point.load()()
            code = None
        except SystemExit as e:
            code = e.code
    found[point.name] = [code, out.getvalue()[:200]]
print(json.dumps(found))
"""
    helped = subprocess.run([str(python), "-c", every_tool], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=180)
    assert helped.returncode == 0, helped.stderr[-2000:]
    found = json.loads(helped.stdout.strip().splitlines()[-1])
    assert sorted(found) == sorted(CONSOLE_TOOLS)
    for tool, (code, out) in found.items():
        assert code in (0, None) and out.startswith(f"usage: {tool} "), f"{tool}: exit {code}, {out!r}"
