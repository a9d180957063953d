#!/usr/bin/env python
"""``python tools/export_model.py``: the command ``daaf-export`` (daaf/tools/export_model.py), from a checkout."""

import sys

from daaf.tools.export_model import cli, main, parser  # noqa: F401  (main and parser for code that loads this file)

if __name__ == "__main__":
    sys.exit(cli())
