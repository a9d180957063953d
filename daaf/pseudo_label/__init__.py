"""Person labels for DAAF: PSEUDO_LABELER_REGISTRY, its labelers and the labelling job
(``runner``: the job; ``targets``: which files; ``labelling``: one split; ``journal``: resumable
progress; ``summary``: the table; ``train_labels``: the check before training). The label-file
format is :mod:`daaf.data.person_labels`."""

from .build import PSEUDO_LABELER_REGISTRY, PersonLabel, PersonLabeler, build_pseudo_labeler
from .detectron2_labeler import Detectron2Labeler, build_detectron2_model
from .person_selection import box_iou, match_box, select_person
