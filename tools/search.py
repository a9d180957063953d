#!/usr/bin/env python
"""``python tools/search.py``: the command ``daaf-search`` (daaf/tools/search.py), from a checkout."""

import sys

from daaf.tools.search import cli, main, parser  # noqa: F401  (main and parser for code that loads this file)

if __name__ == "__main__":
    sys.exit(cli())
