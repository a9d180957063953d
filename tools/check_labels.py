#!/usr/bin/env python
"""``python tools/check_labels.py``: the command ``daaf-check-labels`` (daaf/tools/check_labels.py), from a checkout."""

import sys

from daaf.tools.check_labels import cli, main  # noqa: F401  (main for code that loads this file)

if __name__ == "__main__":
    sys.exit(cli())
