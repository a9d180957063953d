#!/usr/bin/env bash
# Create .venv with the pinned CI requirements (torch 2.14.1 + torchvision 0.29.2 work on CPU),
# install DAAF-ReID into it and run the tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -r requirements/ci.txt
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
.venv/bin/python -m pytest -q "$@"
