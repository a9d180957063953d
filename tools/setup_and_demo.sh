#!/usr/bin/env bash
# Set up .venv (tools/setup_env.sh), generate the synthetic persons with their exact masks and
# keypoints, train + evaluate TriNet and DAAF-TriNet on them and print one table (tools/demo.py).
# Extra arguments (KEY VALUE config overrides) go to both training runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
.venv/bin/python datasets/prepare_synthetic.py
.venv/bin/python tools/demo.py "$@"
