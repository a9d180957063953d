"""The labelling journal: each process appends one JSON line per labelled image to
``<label file>.partial-rank<R>.jsonl`` (fsync'ed after every batch), so a kill loses at most the
batch in flight and a re-run goes on from what every process wrote. The first line of a journal is
the header of the labeler's settings; journals of other settings are refused, not mixed."""

import glob
import json
import os
from typing import Dict, List

from daaf.utils.errors import UserError

__all__ = ["journal_path", "journal_files", "repair_journal", "read_journals", "JournalWriter"]


def journal_path(out_path: str, rank: int) -> str:
    """The journal of process ``rank`` for the label file ``out_path``."""
    return f"{out_path}.partial-rank{rank}.jsonl"


def journal_files(out_path: str) -> List[str]:
    """Every process's journal of the label file ``out_path`` (sorted)."""
    return sorted(glob.glob(glob.escape(out_path) + ".partial-rank*.jsonl"))


def repair_journal(path: str) -> None:
    """Cut a line torn by a kill off the end of a journal, so appending stays valid JSON lines."""
    if not os.path.isfile(path):
        return
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            f.truncate(end)


def read_journals(out_path: str, header: dict) -> Dict[str, dict]:
    """file_name -> entry from every journal of ``out_path``; UserError when one was made by a
    labeler with other settings (mixing them would give a file that no single labeler made)."""
    entries = {}
    for path in journal_files(out_path):
        with open(path, "r") as f:
            lines = f.read().splitlines()
        for number, line in enumerate(lines):
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of another process's journal; that image is redone
            if number == 0:
                if item.get("header") != header:
                    raise UserError(
                        f"{path}: partial labels made with other labeler settings ({item.get('header')}); "
                        "delete the partial files to start over, or label with those settings"
                    )
                continue
            entries[item["file_name"]] = item
    return entries


class JournalWriter:
    """Appends entries to one process's journal, durably (a context manager)."""

    def __init__(self, path: str, header: dict):
        self.path, self.header = path, header

    def __enter__(self) -> "JournalWriter":
        is_new = not os.path.isfile(self.path) or os.path.getsize(self.path) == 0
        self.file = open(self.path, "a")
        if is_new:
            self.file.write(json.dumps({"header": self.header}) + "\n")
        return self

    def append(self, entries: List[dict]) -> None:
        """Write ``entries`` (one JSON line each) and make them durable before returning."""
        self.file.write("".join(json.dumps(e) + "\n" for e in entries))
        self.file.flush()
        os.fsync(self.file.fileno())

    def __exit__(self, *exc) -> None:
        self.file.close()
