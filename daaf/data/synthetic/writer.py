"""Writing the synthetic persons as a dataset in Market-1501 layout, with their ground-truth
person-label files and a Partial-REID-style split. Deterministic from the seed."""

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Dict, List

import cv2
import numpy as np

from daaf.utils.file_io import PathManager, replaced_folder

from ..person_labels import label_file_path, make_annotation, write_label_file
from .renderer import PersonRenderer, sample_camera, sample_identity

__all__ = ["SyntheticConfig", "generate_synthetic_dataset", "synthetic_dataset_complete"]

logger = logging.getLogger(__name__)


@dataclass
class SyntheticConfig:
    """Size and difficulty of the synthetic dataset."""

    num_train_ids: int = 100
    num_test_ids: int = 100
    num_cameras: int = 6
    min_images_per_id: int = 6
    max_images_per_id: int = 14
    num_distractors: int = 60
    num_junk: int = 10
    num_partial_ids: int = 40
    height: int = 128
    width: int = 64
    occlusion_prob: float = 0.2
    seed: int = 0


def _assign_cameras(rng, num_images: int, num_cameras: int) -> List[int]:
    cams = rng.choice(num_cameras, size=int(rng.integers(2, num_cameras + 1)), replace=False)
    assigned = list(cams) + list(rng.choice(cams, size=max(0, num_images - len(cams))))
    return [int(c) + 1 for c in assigned[:num_images]]


_SPLITS = (("bounding_box_train", "train"), ("query", "query"), ("bounding_box_test", "gallery"))
_GENERATION_FILE = "generation.json"


def synthetic_dataset_complete(root: str, labels_dir: str = None) -> bool:
    """Whether ``root/SyntheticPersons`` and its three label files (``labels_dir``, default
    ``root/daaf_labels``) are there and come from the same generation (a run killed between
    writing the images and the labels leaves images of one seed with labels of another)."""
    labels_dir = labels_dir or os.path.join(root, "daaf_labels")
    try:
        with open(os.path.join(root, "SyntheticPersons", _GENERATION_FILE)) as f:
            generation = json.load(f)["generation"]
        for _, name in _SPLITS:
            with open(label_file_path(labels_dir, "SyntheticPersons", name)) as f:
                if json.load(f)["info"]["labeler_config"].get("generation") != generation:
                    return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def generate_synthetic_dataset(root: str, config: SyntheticConfig = None, labels_dir: str = None, progress: bool = True) -> Dict[str, int]:
    """Write ``root/SyntheticPersons`` (Market-1501 layout), its ground-truth label files
    (``labels_dir``, default ``root/daaf_labels``) and partial splits under
    ``root/SyntheticPersons/partial``. Returns image counts per split.

    The images are drawn into a folder beside the dataset that then replaces it as a whole (a kill
    leaves the old dataset as it was), then the label files are written, each atomically; the
    images and the labels carry the config's digest, which :func:`synthetic_dataset_complete` checks.
    """
    config = config or SyntheticConfig()
    rng = np.random.default_rng(config.seed)
    final_out = os.path.join(root, "SyntheticPersons")
    labels_dir = labels_dir or os.path.join(root, "daaf_labels")
    # the same config draws the same images: its digest tells one generation from another
    generation = {
        "generation": hashlib.sha1(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:16],
        "config": asdict(config),
    }
    with replaced_folder(final_out) as out:
        counts, images, annotations = _draw_dataset(out, config, rng, progress)
        with open(os.path.join(out, _GENERATION_FILE), "w") as f:
            json.dump(generation, f)
    for split, name in _SPLITS:
        write_label_file(
            label_file_path(labels_dir, "SyntheticPersons", name),
            images[split],
            annotations[split],
            labeler="synthetic-gt",
            dataset=f"SyntheticPersons_{name}",
            labeler_config={**asdict(config), "generation": generation["generation"]},
        )
    logger.info(f"Synthetic dataset written to {final_out}: {counts}; labels in {labels_dir}")
    return counts


def _draw_dataset(out: str, config: SyntheticConfig, rng, progress: bool):
    """Draw every crop of the dataset into folder ``out``; (counts, label-file images, annotations)."""
    renderer = PersonRenderer(config.height, config.width, config.occlusion_prob)
    cameras = [sample_camera(rng) for _ in range(config.num_cameras)]
    num_ids = config.num_train_ids + config.num_test_ids
    identities = {pid: sample_identity(rng) for pid in range(1, num_ids + config.num_distractors + 1)}
    plans = []  # (split, pid, cam, frame)
    frame = 0
    for pid in range(1, num_ids + 1):
        n = int(rng.integers(config.min_images_per_id, config.max_images_per_id + 1))
        cams = _assign_cameras(rng, n, config.num_cameras)
        if pid <= config.num_train_ids:
            plans += [("bounding_box_train", pid, c, (frame := frame + 1)) for c in cams]
            continue
        # One query per camera (as in Market-1501), except in one camera whose images all go to
        # the gallery, so that every query has a true match from another camera.
        gallery_cam = max(set(cams), key=cams.count)
        seen = set()
        for c in cams:
            split = "query" if c not in seen and c != gallery_cam else "bounding_box_test"
            seen.add(c)
            plans.append((split, pid, c, (frame := frame + 1)))
    for j in range(config.num_distractors):  # pid 0: distractors, gallery only
        plans.append(("bounding_box_test", 0, int(rng.integers(1, config.num_cameras + 1)), (frame := frame + 1), num_ids + 1 + j))
    for _ in range(config.num_junk):  # pid -1: junk, dropped at load as in Market-1501
        plans.append(("bounding_box_test", -1, int(rng.integers(1, config.num_cameras + 1)), (frame := frame + 1)))

    images: Dict[str, list] = {"bounding_box_train": [], "query": [], "bounding_box_test": []}
    annotations: Dict[str, dict] = {k: {} for k in images}
    rendered = {}
    iterator = plans
    if progress:
        from tqdm import tqdm

        iterator = tqdm(plans, desc="drawing synthetic persons", unit="img")
    for plan in iterator:
        split, pid, cam, fr = plan[:4]
        identity = identities[plan[4]] if pid == 0 else identities.get(pid) or sample_identity(rng)
        image, mask, keypoints = renderer.render(identity, cameras[cam - 1], rng)
        if pid == -1:  # a bad detection: the person is cut to a sliver
            image[:, : config.width // 2] = np.clip(image[:, : config.width // 2] * 0.3, 0, 255).astype(np.uint8)
        name = f"{pid:04d}_c{cam}s1_{fr:06d}_00.jpg" if pid >= 0 else f"-1_c{cam}s1_{fr:06d}_00.jpg"
        relpath = f"{split}/{name}"
        path = os.path.join(out, relpath)
        PathManager.mkdirs(os.path.dirname(path))
        cv2.imwrite(path, image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        image_id = len(rendered) + 1
        rendered[(split, name)] = (pid, image, mask, keypoints)
        images[split].append({"id": image_id, "file_name": relpath, "height": config.height, "width": config.width})
        annotations[split][image_id] = make_annotation(mask, keypoints)

    _write_partial_splits(out, rendered, config, rng)
    return {split: len(v) for split, v in images.items()}, images, annotations


def _write_partial_splits(out: str, rendered: dict, config: SyntheticConfig, rng) -> None:
    """Partial-REID-style folders: the upper 45-75 % of a query crop (partial_body_images) and
    a whole-body gallery crop of the same person from another camera (whole_body_images)."""
    by_pid: Dict[int, dict] = {}
    for (split, _name), (pid, image, _, _) in rendered.items():
        if pid > config.num_train_ids and split in ("query", "bounding_box_test"):
            by_pid.setdefault(pid, {}).setdefault(split, []).append(image)
    pids = [p for p in sorted(by_pid) if "query" in by_pid[p] and "bounding_box_test" in by_pid[p]][: config.num_partial_ids]
    for new_id, pid in enumerate(pids, start=1):
        partial = by_pid[pid]["query"][0]
        keep = int(partial.shape[0] * rng.uniform(0.45, 0.75))
        whole = by_pid[pid]["bounding_box_test"][0]
        for folder, image in (("partial_body_images", partial[:keep]), ("whole_body_images", whole)):
            path = os.path.join(out, "partial", folder, f"{new_id:03d}_01.jpg")
            PathManager.mkdirs(os.path.dirname(path))
            cv2.imwrite(path, image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
