#!/usr/bin/env bash
# Create .venv with the pinned requirements (requirements/ci.txt) and install DAAF-ReID into it
# (editable). Safe to re-run: what is already installed is kept.
#
# What it installs: torch 2.14.1 + torchvision 0.29.1 from PyPI. These are PyPI's default (CUDA)
# builds, about 6 GB with their NVIDIA libraries; they run on a CPU as well, and they are the pair
# verified here. detectron2 is optional: bash tools/install_detectron2.sh adds it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $(python3 --version)"
  python3 -m venv .venv
fi
echo "setup: installing requirements/ci.txt into .venv (the first time: several minutes, ~6 GB)"
# pip draws its progress bar on a terminal (the first install is the long one)
.venv/bin/python -m pip install -r requirements/ci.txt
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
.venv/bin/python -c 'import torch, daaf; print("setup: daaf", daaf.__version__, "torch", torch.__version__, "CUDA build", torch.version.cuda or "none", "GPU visible", torch.cuda.is_available())'
