"""Person masks as COCO run-length encoding: the compressed RLE with ``str`` counts that label files
hold and dataset records keep, decoded once per crop by the mapper."""

import numpy as np
from pycocotools import mask as mask_utils

__all__ = ["encode_mask", "decode_mask", "check_rle", "rle_run_lengths"]


def encode_mask(mask: np.ndarray) -> dict:
    """(H, W) bool/uint8 mask -> COCO compressed RLE {"size": [h, w], "counts": str}."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_mask(rle: dict) -> np.ndarray:
    """COCO compressed RLE {"size": [h, w], "counts": str} -> (H, W) uint8 mask of 0/1."""
    return np.ascontiguousarray(mask_utils.decode({"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")}))


def rle_run_lengths(counts: str) -> np.ndarray:
    """The run lengths (int64) that a compressed RLE string holds, read as pycocotools' rleFrString
    reads them: 5 bits a character (offset 48), 0x20 continues a number, 0x10 in its last character
    makes it negative, and from the third run on each number is a difference to the run two back.
    ValueError for a character outside the format or an unfinished last number."""
    codes = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    if len(codes) == 0:
        return np.zeros(0, np.int64)
    if ((codes < 0) | (codes > 63)).any():
        raise ValueError("counts hold characters outside the compressed RLE alphabet")
    last = (codes & 0x20) == 0
    if not last[-1]:
        raise ValueError("counts end in the middle of a number")
    number = np.concatenate([[0], np.cumsum(last)[:-1]])  # which number each character belongs to
    starts = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    digit = np.arange(len(codes)) - starts[number]
    if digit.max() > 11:
        raise ValueError("counts hold a number of more than 60 bits")
    values = np.bincount(number, (codes & 0x1F) << (5 * digit)).astype(np.int64)
    negative = (codes[last] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * (digit[last][negative] + 1))
    runs = values.copy()
    runs[2::2] = np.cumsum(values[2::2])
    runs[3::2] = values[1] + np.cumsum(values[3::2]) if len(values) > 3 else runs[3::2]
    return runs


def check_rle(rle) -> tuple:
    """The (h, w) of a compressed RLE, checked to describe exactly h x w pixels (non-negative runs
    that add up to h * w) without decoding it; ValueError saying what is wrong."""
    if not isinstance(rle, dict) or not isinstance(rle.get("counts"), str):
        raise ValueError('expected a compressed RLE {"size": [h, w], "counts": "<string>"}')
    size = rle.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise ValueError(f"expected size [h, w] of two positive integers, got {size!r}")
    try:
        runs = rle_run_lengths(rle["counts"])
    except UnicodeEncodeError:
        raise ValueError("counts hold characters outside the compressed RLE alphabet") from None
    if (runs < 0).any() or runs.sum() != size[0] * size[1]:
        raise ValueError(f"counts describe {int(runs.sum())} pixels with runs {runs[:4].tolist()}..., not the {size[0]} x {size[1]} mask")
    return tuple(size)
