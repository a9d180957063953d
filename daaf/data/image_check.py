"""Checking a dataset's image files before training: each file's header and end, not its pixels.

A truncated, empty or foreign file found at iteration 12 000 (or inside a loader worker) costs a
run; found before the first iteration it costs a second. The result is cached per file list
(paths, sizes, modification times) under ``$DAAF_CACHE_DIR`` (default ``~/.cache/daaf-reid``).
"""

import hashlib
import json
import logging
import os
import struct
from typing import Dict, List, Optional, Sequence

from tqdm import tqdm

from daaf.utils.errors import DatasetError
from daaf.utils.file_io import atomic_write, cache_dir

__all__ = ["image_problem", "find_bad_images", "drop_or_refuse_bad_images"]

logger = logging.getLogger(__name__)

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_HEADER_BYTES = 256 * 1024  # JPEG's frame header follows its metadata segments (EXIF, ICC)
_SHOWN = 10  # bad files named in the one-line error


def _jpeg_problem(head: bytes, tail: bytes) -> Optional[str]:
    pos = 2
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            return "corrupt JPEG header"
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_SOF:
            if pos + 9 > len(head):
                return "truncated JPEG header"
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            if height == 0 or width == 0:
                return "JPEG of size 0"
            break
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        pos += 2 + struct.unpack(">H", head[pos + 2 : pos + 4])[0]
    else:
        return "no JPEG frame header"
    if b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    return None


def image_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be a readable JPEG, PNG, BMP or TIFF image (from its header and its end), or
    None when it looks whole."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(_HEADER_BYTES)
            f.seek(max(size - 64, 0))
            tail = f.read()
    except FileNotFoundError:
        return "file not found"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if size == 0:
        return "empty file"
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg_problem(head, tail)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if head[12:16] != b"IHDR":
            return "corrupt PNG header"
        return None if b"IEND" in tail[-12:] else "truncated PNG (no IEND chunk)"
    if head.startswith((b"II*\x00", b"MM\x00*")):  # TIFF: its directory may lie anywhere; the header only
        return None if size >= 8 else "truncated TIFF header"
    if head.startswith(b"BM") and len(head) >= 6:
        declared = struct.unpack("<I", head[2:6])[0]
        return None if declared <= size else f"truncated BMP ({size} of {declared} bytes)"
    return "not a JPEG, PNG, BMP or TIFF image"


def _cache_key(paths: Sequence[str]) -> str:
    digest = hashlib.sha1()
    for path in paths:
        try:
            st = os.stat(path)
            digest.update(f"{path}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\tmissing\n".encode())
    return digest.hexdigest()


def find_bad_images(paths: Sequence[str], progress: bool = True) -> Dict[str, str]:
    """{path: problem} for the files of ``paths`` that are not whole images (see
    :func:`image_problem`); a file list checked before (same paths, sizes and times) is not read
    again."""
    cache = os.path.join(cache_dir(), "image-checks", _cache_key(paths) + ".json")
    if os.path.isfile(cache):
        with open(cache) as f:
            return json.load(f)
    bad = {}
    for path in tqdm(paths, desc="checking images", unit="img", disable=not progress or len(paths) < 2000, leave=True):
        problem = image_problem(path)
        if problem is not None:
            bad[path] = problem
    try:
        with atomic_write(cache, "w") as f:
            json.dump(bad, f)
    except OSError as e:  # a read-only home: check again next time
        logger.debug(f"image check not cached ({e})")
    return bad


def drop_or_refuse_bad_images(records: List[dict], skip: bool, what: str = "training images") -> List[dict]:
    """``records`` whose files are whole images. A DatasetError listing the bad files in one line,
    unless ``skip`` (DATALOADER.SKIP_BAD_IMAGES): then they are dropped with one warning."""
    bad = find_bad_images([r["file_name"] for r in records])
    if not bad:
        return records
    listed = "; ".join(f"{path} ({problem})" for path, problem in list(bad.items())[:_SHOWN])
    more = f"; and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    if not skip:
        raise DatasetError(
            f"{len(bad)} of {len(records)} {what} cannot be read: {listed}{more}; "
            "replace or remove them, or set DATALOADER.SKIP_BAD_IMAGES True to train without them"
        )
    logger.warning(f"Skipping {len(bad)} of {len(records)} {what} that cannot be read (DATALOADER.SKIP_BAD_IMAGES): {listed}{more}")
    return [r for r in records if r["file_name"] not in bad]
