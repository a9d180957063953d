"""Checking image files before they are used: each file's header and end, not its pixels.

Every split a run reads (training, query and gallery images) and the tools' inputs are checked,
and an image whose header declares more than ``INPUT.MAX_IMAGE_PIXELS`` pixels is refused before
it is decoded (a few KB of PNG can declare gigabytes of pixels).

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

__all__ = [
    "HEADER_BYTES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "image_header_size",
    "pixel_limit_problem",
    "image_problem",
    "find_bad_images",
    "drop_or_refuse_bad_images",
]

# The default of INPUT.MAX_IMAGE_PIXELS: a 12,000 x 8,000 photo; a ReID crop is a few thousand pixels.
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000

logger = logging.getLogger(__name__)

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
HEADER_BYTES = 256 * 1024  # JPEG's frame header follows its metadata segments (EXIF, ICC)
_SHOWN = 10  # bad files named in the one-line error


def _jpeg_frame(head: bytes) -> tuple:
    """(problem or None, (height, width) or None) from the segments of a JPEG's first bytes."""
    pos = 2
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            return "corrupt JPEG header", None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_SOF:
            if pos + 9 > len(head):
                return "truncated JPEG header", None
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return ("JPEG of size 0" if height == 0 or width == 0 else None), (height, width)
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        pos += 2 + struct.unpack(">H", head[pos + 2 : pos + 4])[0]
    return "no JPEG frame header", None


def image_header_size(head: bytes) -> Optional[tuple]:
    """(height, width) that a JPEG, PNG or BMP file's first bytes ``head`` declare; None for another
    format or a header too short to tell."""
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg_frame(head)[1]
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return height, width
    if head.startswith(b"BM") and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return abs(height), abs(width)  # a negative height is a top-down BMP
    return None


def pixel_limit_problem(head: bytes, max_pixels: int) -> Optional[str]:
    """Why an image whose first bytes are ``head`` is refused before decoding (its header declares
    more than ``max_pixels`` pixels), or None."""
    size = image_header_size(head)
    if size is not None and size[0] * size[1] > max_pixels:
        return f"declares {size[1]} x {size[0]} pixels, more than INPUT.MAX_IMAGE_PIXELS ({max_pixels:,})"
    return None


def _jpeg_problem(head: bytes, tail: bytes) -> Optional[str]:
    problem, _ = _jpeg_frame(head)
    if problem is None and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    return problem


def image_problem(path: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Optional[str]:
    """Why ``path`` cannot be a readable JPEG, PNG, BMP or TIFF image of at most ``max_pixels``
    pixels (from its header and its end), or None when it looks whole."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
            f.seek(max(size - 64, 0))
            tail = f.read()
    except FileNotFoundError:
        return "file not found"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if size == 0:
        return "empty file"
    too_large = pixel_limit_problem(head, max_pixels)
    if too_large:
        return too_large
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


def find_bad_images(paths: Sequence[str], progress: bool = True, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Dict[str, str]:
    """{path: problem} for the files of ``paths`` that are not whole images of at most
    ``max_pixels`` pixels (see :func:`image_problem`); a file list checked before (same paths,
    sizes and times, same limit) is not read again."""
    cache = os.path.join(cache_dir(), "image-checks", _cache_key(paths) + f"-{max_pixels}.json")
    if os.path.isfile(cache):
        with open(cache) as f:
            return json.load(f)
    bad = {}
    for path in tqdm(paths, desc="checking images", unit="img", disable=not progress or len(paths) < 2000, leave=True):
        problem = image_problem(path, max_pixels)
        if problem is not None:
            bad[path] = problem
    try:
        with atomic_write(cache, "w") as f:
            json.dump(bad, f)
    except OSError as e:  # a read-only home: check again next time
        logger.debug(f"image check not cached ({e})")
    return bad


def drop_or_refuse_bad_images(
    records: List[dict], skip: bool, what: str = "training images", max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, skippable: bool = True
) -> List[dict]:
    """``records`` whose files are whole images. A DatasetError listing the bad files in one line,
    unless ``skip`` (DATALOADER.SKIP_BAD_IMAGES): then they are dropped with one warning. The error
    names DATALOADER.SKIP_BAD_IMAGES when ``skippable`` (a training set, which may lose images)."""
    bad = find_bad_images([r["file_name"] for r in records], max_pixels=max_pixels)
    if not bad:
        return records
    listed = "; ".join(f"{path} ({problem})" for path, problem in list(bad.items())[:_SHOWN])
    more = f"; and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    if not skip:
        hint = ", or set DATALOADER.SKIP_BAD_IMAGES True to train without them" if skippable else ""
        raise DatasetError(f"{len(bad)} of {len(records)} {what} cannot be read: {listed}{more}; replace or remove them{hint}")
    logger.warning(f"Skipping {len(bad)} of {len(records)} {what} that cannot be read (DATALOADER.SKIP_BAD_IMAGES): {listed}{more}")
    return [r for r in records if r["file_name"] not in bad]
