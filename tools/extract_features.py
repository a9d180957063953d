#!/usr/bin/env python
"""``python tools/extract_features.py``: the command ``daaf-extract-features`` (daaf/tools/extract_features.py), from a checkout."""

import sys

from daaf.tools.extract_features import cli, main, parser  # noqa: F401  (main and parser for code that loads this file)

if __name__ == "__main__":
    sys.exit(cli())
