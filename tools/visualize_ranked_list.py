#!/usr/bin/env python
"""``python tools/visualize_ranked_list.py``: the command ``daaf-visualize-ranked-list`` (daaf/tools/visualize_ranked_list.py), from a checkout."""

import sys

from daaf.tools.visualize_ranked_list import cli, main, parser  # noqa: F401  (main and parser for code that loads this file)

if __name__ == "__main__":
    sys.exit(cli())
