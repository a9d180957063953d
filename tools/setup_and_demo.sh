#!/usr/bin/env bash
# Create .venv (pinned CPU requirements), generate the synthetic persons and run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -r requirements/ci.txt
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
.venv/bin/python datasets/prepare_synthetic.py
.venv/bin/python tools/train_net.py --config-file configs/Synthetic/trinet_R18.yaml "$@"
