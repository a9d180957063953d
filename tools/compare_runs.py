#!/usr/bin/env python
"""``python tools/compare_runs.py``: the command ``daaf-compare-runs`` (daaf/tools/compare_runs.py), from a checkout."""

import sys

from daaf.tools.compare_runs import cli, main, parser  # noqa: F401  (main and parser for code that loads this file)

if __name__ == "__main__":
    sys.exit(cli())
