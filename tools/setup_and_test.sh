#!/usr/bin/env bash
# Set up .venv (tools/setup_env.sh), check the code with the linter and the formatter (ruff, as
# configured in pyproject.toml), then run the test suite, printing the 15 slowest tests.
# Extra arguments go to pytest. Tests that need detectron2 run when it is installed
# (bash tools/install_detectron2.sh) and are skipped with the reason otherwise.
# The tests run in one process per core (pytest-xdist), one torch thread each: many of them wait
# on subprocesses they start, so two workers finish a 2-core machine's run in ~60% of the time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
echo "lint: ruff check + ruff format --check"
.venv/bin/ruff check --no-cache .
.venv/bin/ruff format --check --no-cache .
.venv/bin/python -m pytest -q -n auto --dist worksteal --durations=15 "$@"
