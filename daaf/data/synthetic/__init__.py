"""Procedurally drawn persons with exact masks and keypoints: the renderer (one crop) and the
writer (a dataset in Market-1501 layout with its label files)."""

from .renderer import PersonRenderer, sample_camera, sample_identity
from .writer import SyntheticConfig, generate_synthetic_dataset, synthetic_dataset_complete
