#!/usr/bin/env python
"""``python tools/visualize_attention.py``: the command ``daaf-visualize-attention`` (daaf/tools/visualize_attention.py), from a checkout."""

import sys

from daaf.tools.visualize_attention import cli, main, parser  # noqa: F401  (main and parser for code that loads this file)

if __name__ == "__main__":
    sys.exit(cli())
