#!/usr/bin/env bash
# Set up .venv (tools/setup_env.sh) and run the test suite, printing the 15 slowest tests.
# Extra arguments go to pytest. Tests that need detectron2 run when it is installed
# (bash tools/install_detectron2.sh) and are skipped with the reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
.venv/bin/python -m pytest -q --durations=15 "$@"
