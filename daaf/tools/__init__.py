"""The command-line tools, installed as commands (``daaf-train``, ``daaf-extract-features``,
``daaf-search``, ``daaf-export``, ``daaf-visualize-attention``, ``daaf-visualize-ranked-list``,
``daaf-check-labels``); each also runs as ``python -m daaf.tools.<name>`` and, in a checkout, as
``python tools/<name>.py``."""
