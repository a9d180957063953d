#!/usr/bin/env python
"""``python tools/train_net.py``: the command ``daaf-train`` (daaf/tools/train_net.py), from a checkout."""

import sys

from daaf.tools.train_net import cli, main  # noqa: F401  (main for code that loads this file)

if __name__ == "__main__":
    sys.exit(cli())
