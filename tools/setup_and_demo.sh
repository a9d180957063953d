#!/usr/bin/env bash
# Create .venv (pinned CPU requirements), generate the synthetic persons with their exact masks and
# keypoints, train + evaluate TriNet and DAAF-TriNet on them and print one table (tools/demo.py).
# Extra arguments (KEY VALUE config overrides) go to both training runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -r requirements/ci.txt
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
.venv/bin/python datasets/prepare_synthetic.py
.venv/bin/python tools/demo.py "$@"
