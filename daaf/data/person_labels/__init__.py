"""Person labels (a mask and 17 COCO keypoints per crop): the keypoint schema (``keypoints``), the
mask codec (``rle``), the label-file format (``label_file``) and attaching labels to dataset
records (``records``). The format is described in ``label_file``."""

from .keypoints import (
    COCO_KEYPOINT_FLIP_MAP,
    COCO_KEYPOINT_NAMES,
    COCO_SKELETON,
    KEYPOINT_FLIP_INDICES,
    NUM_KEYPOINTS,
    VISIBILITY_VALUES,
    parse_keypoints,
)
from .label_file import label_file_path, load_label_file, make_annotation, resolve_labels_dir, write_label_file
from .records import attach_labels, person_label
from .rle import check_rle, decode_mask, encode_mask, rle_run_lengths
