"""Person labels for DAAF: the label-file format, PSEUDO_LABELER_REGISTRY and its labelers.

The labelling job itself (which needs ``daaf.data``) is in :mod:`daaf.pseudo_label.runner`.
"""

from .build import PSEUDO_LABELER_REGISTRY, PersonLabel, PersonLabeler, build_pseudo_labeler
from .detectron2_labeler import Detectron2Labeler, build_detectron2_model
from .label_file import load_label_file, write_label_file
from .person_selection import box_iou, match_box, select_person
