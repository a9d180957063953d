"""CUHK03 under the new protocol (Zhong et al. 2017): 767 training / 700 test identities.

Two ways in:
  * the CUHK03-NP folders: ``<root>/cuhk03-np/{labeled,detected}/{bounding_box_train,query,bounding_box_test}``;
  * the original release ``<root>/cuhk03/cuhk03_release/cuhk-03.mat`` + the split files
    ``<root>/cuhk03/cuhk03_new_protocol_config_{labeled,detected}.mat``; its images are first
    extracted once by ``python datasets/prepare_cuhk03.py`` into ``<root>/cuhk03/images_{labeled,detected}/``.
"""

import os
import re

import cv2
import numpy as np

from daaf.utils.errors import DatasetError
from daaf.utils.file_io import PathManager

from .bases import DATASET_REGISTRY, ReIDDataset

__all__ = ["CUHK03Labeled", "CUHK03Detected", "extract_cuhk03_images"]

_NP_PATTERN = re.compile(r"^(\d+)_c(\d)_")


class _CUHK03NewProtocol(ReIDDataset):
    variant = "labeled"
    dataset_dirs = ("cuhk03-np", "CUHK03-NP", "cuhk03")

    @property
    def layout_hint(self):
        return (
            f"<root>/cuhk03-np/{self.variant}/{{bounding_box_train,query,bounding_box_test}}/0001_c1_01.png, or "
            f"<root>/cuhk03/cuhk03_release/cuhk-03.mat + cuhk03_new_protocol_config_{self.variant}.mat "
            "(then run: python datasets/prepare_cuhk03.py)"
        )

    def load(self):
        folder_form = os.path.join(self.dataset_dir, self.variant)
        if PathManager.isdir(os.path.join(folder_form, "bounding_box_train")):
            return tuple(
                self.parse_folder(self.require_dir(self.variant, split), _NP_PATTERN)
                for split in ("bounding_box_train", "query", "bounding_box_test")
            )
        return self._load_protocol()

    def _load_protocol(self):
        from scipy.io import loadmat

        protocol = os.path.join(self.dataset_dir, f"cuhk03_new_protocol_config_{self.variant}.mat")
        images_dir = os.path.join(self.dataset_dir, f"images_{self.variant}")
        if not PathManager.isfile(protocol):
            raise DatasetError(f"{self.name}: split file not found: {protocol} (expected layout: {self.layout_hint})")
        if not PathManager.isdir(images_dir):
            raise DatasetError(
                f"{self.name}: extracted images not found: {images_dir}; run: python datasets/prepare_cuhk03.py --root {self.root}"
            )
        split = loadmat(protocol)
        files = [str(np.squeeze(f)) for f in np.squeeze(split["filelist"])]
        labels = np.squeeze(split["labels"]).astype(int)
        cams = np.squeeze(split["camId"]).astype(int)

        def records(key):
            out = []
            for idx in np.squeeze(split[key]).astype(int).reshape(-1) - 1:  # 1-based in MATLAB
                path = os.path.join(images_dir, files[idx])
                out.append(self.record(path, labels[idx], cams[idx] - 1))
            missing = [r["file_name"] for r in out if not PathManager.isfile(r["file_name"])]
            if missing:
                raise DatasetError(
                    f"{self.name}: {len(missing)} images of the split are missing, e.g. {missing[0]}; re-run datasets/prepare_cuhk03.py"
                )
            return out

        return records("train_idx"), records("query_idx"), records("gallery_idx")


@DATASET_REGISTRY.register()
class CUHK03Labeled(_CUHK03NewProtocol):
    """CUHK03 (manually labelled boxes), new protocol: 7,368 train / 1,400 query / 5,328 gallery."""

    variant = "labeled"


@DATASET_REGISTRY.register()
class CUHK03Detected(_CUHK03NewProtocol):
    """CUHK03 (DPM-detected boxes), new protocol: 7,365 train / 1,400 query / 5,332 gallery."""

    variant = "detected"


def extract_cuhk03_images(mat_path: str, out_root: str, progress: bool = True) -> dict:
    """Write every image of ``cuhk-03.mat`` (MATLAB v7.3 / HDF5) as
    ``out_root/images_{labeled,detected}/{pair}_{person:03d}_{camera}_{index:02d}.png`` (the names
    the new-protocol split files use). Images already extracted are kept. Returns counts."""
    try:
        import h5py
    except ImportError:
        raise DatasetError("reading cuhk-03.mat needs h5py: pip install h5py") from None
    if not os.path.isfile(mat_path):
        raise DatasetError(f"CUHK03: file not found: {mat_path}")
    counts = {}
    with h5py.File(mat_path, "r") as mat:
        for variant in ("labeled", "detected"):
            out_dir = os.path.join(out_root, f"images_{variant}")
            os.makedirs(out_dir, exist_ok=True)
            written = 0
            pairs = [mat[ref] for ref in np.asarray(mat[variant]).reshape(-1)]
            jobs = [(p, person, index) for p, pair in enumerate(pairs) for person in range(pair.shape[0]) for index in range(pair.shape[1])]
            if progress:
                from tqdm import tqdm

                jobs = tqdm(jobs, desc=f"extracting CUHK03 {variant}", unit="img")
            for p, person, index in jobs:
                image = np.asarray(mat[pairs[p][person, index]]).T
                if image.ndim < 3 or image.size == 0:
                    continue  # fewer than 10 images for this person
                name = f"{p + 1}_{person + 1:03d}_{1 if index < 5 else 2}_{index + 1:02d}.png"
                path = os.path.join(out_dir, name)
                if not os.path.exists(path):
                    tmp = path + ".tmp.png"
                    cv2.imwrite(tmp, np.ascontiguousarray(image[:, :, ::-1]))
                    os.replace(tmp, path)
                written += 1
            counts[variant] = written
    return counts
