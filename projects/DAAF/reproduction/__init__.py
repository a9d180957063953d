"""The parts of projects/DAAF/reproduce.py, one job each: ``runs`` (one training or evaluation and
making its results), ``plan`` (the rows of the tables and the runs they need), ``statistics``
(mean, std, paired differences) and ``tables`` (the Markdown, CSV and JSON tables)."""
