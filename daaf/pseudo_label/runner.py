"""Label every crop of a dataset split with a registered labeler, resumably and across processes.

Progress is appended, one JSON line per image, to ``<label file>.partial-rank<R>.jsonl`` beside the
label file (each process its own file, fsync'ed after every batch), so a kill loses at most the batch
in flight. A re-run reads every partial file first and labels only what is missing; the images
left are shared round-robin between the processes. When all are labelled, the main process writes
the COCO label file atomically (images in dataset order, so the file does not depend on the number
of processes) and removes the partial files.
"""

import glob
import json
import logging
import os
import shlex
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from torch.utils.data import DataLoader, Dataset

from daaf.data import get_dataset, read_image
from daaf.data.datasets import register_custom_datasets
from daaf.data.person_labels import label_file_path, make_annotation, resolve_labels_dir, write_label_file
from daaf.utils import comm
from daaf.utils.errors import DatasetError, UserError
from daaf.utils.file_io import PathManager

from .build import PersonLabel, PersonLabeler, build_pseudo_labeler

__all__ = [
    "label_records",
    "labeling_targets",
    "pseudo_label_from_config",
    "ensure_train_labels",
    "summarize_label_file",
    "format_summary",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "query", "gallery")


class _CropReader(Dataset):
    """(index, RGB image or None, error message or None) for each record, so that an unreadable
    image reaches the main process as a one-line message rather than a worker traceback."""

    def __init__(self, records: Sequence[dict], indices: Sequence[int]):
        self.records, self.indices = records, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        index = self.indices[i]
        try:
            return index, read_image(self.records[index]["file_name"]), None
        except DatasetError as e:
            return index, None, str(e)


def _partial_path(out_path: str, rank: int) -> str:
    return f"{out_path}.partial-rank{rank}.jsonl"


def _partial_files(out_path: str) -> List[str]:
    return sorted(glob.glob(glob.escape(out_path) + ".partial-rank*.jsonl"))


def _repair_partial(path: str) -> None:
    """Cut a line torn by a kill off the end of a partial file, so appending stays valid JSON lines."""
    if not os.path.isfile(path):
        return
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            f.truncate(end)


def _read_partials(out_path: str, header: dict) -> Dict[str, dict]:
    """file_name -> entry from every partial file of ``out_path``; UserError when one was made by a
    labeler with other settings (mixing them would give a file that no single labeler made)."""
    entries = {}
    for path in _partial_files(out_path):
        with open(path, "r") as f:
            lines = f.read().splitlines()
        for number, line in enumerate(lines):
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of another process's file; that image is redone
            if number == 0:
                if item.get("header") != header:
                    raise UserError(
                        f"{path}: partial labels made with other labeler settings ({item.get('header')}); "
                        "delete the partial files to start over, or label with those settings"
                    )
                continue
            entries[item["file_name"]] = item
    return entries


def _entry(record: dict, image: np.ndarray, person: Optional[PersonLabel]) -> dict:
    annotation = None
    if person is not None:
        annotation = make_annotation(person.mask, person.keypoints, person.keypoint_scores, person.score, box=person.box)
    return {"file_name": record["relpath"], "height": int(image.shape[0]), "width": int(image.shape[1]), "annotation": annotation}


def _label_batch(labeler: PersonLabeler, labeler_name: str, records: Sequence[dict], batch: list) -> list:
    """``labeler`` on the images of ``batch`` ([(index, image, None)]); an exception inside the
    labeler becomes a one-line UserError naming the labeler, the image and the cause."""
    try:
        return labeler([image for _, image, _ in batch])
    except Exception as batch_error:
        culprit, cause = None, batch_error
        for item in batch if len(batch) > 1 else ():  # the image that fails on its own, if one does
            try:
                labeler([item[1]])
            except Exception as e:
                culprit, cause = item, e
                break
        where = records[culprit[0] if culprit else batch[0][0]]["file_name"]
        if culprit is None and len(batch) > 1:
            where = f"a batch of {len(batch)} images starting with {where}"
        message = " ".join(str(cause).split())[:300] or "no message"
        raise UserError(
            f"labeler {labeler_name} failed on {where}: {type(cause).__name__}: {message} "
            "(images labelled before it are saved; a re-run goes on from there)"
        ) from cause


def label_records(
    labeler: PersonLabeler,
    records: Sequence[dict],
    out_path: str,
    *,
    labeler_name: str,
    dataset: str,
    batch_size: int = 8,
    num_workers: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Optional[dict]:
    """Label every record ({"file_name": path, "relpath": name in the file, ...}) and write the
    label file ``out_path``. Call it in every process of a distributed run.

    An existing ``out_path`` is kept unless ``overwrite``. Returns the file's summary
    (:func:`summarize_label_file`) plus "images_per_s" in the main process, None elsewhere.
    """
    if PathManager.isfile(out_path) and not overwrite:
        logger.info(f"{out_path} exists; not recomputed (PSEUDO_LABEL.OVERWRITE True recomputes it)")
        return summarize_label_file(out_path) if comm.is_main_process() else None
    # Through JSON once, so that it compares equal with the header read back from a partial file.
    header = json.loads(json.dumps({"labeler": labeler_name, "labeler_config": labeler.info(), "weights": labeler.weights}))
    rank, world_size = comm.get_rank(), comm.get_world_size()
    own_partial = _partial_path(out_path, rank)
    PathManager.mkdirs(os.path.dirname(os.path.abspath(out_path)))
    _repair_partial(own_partial)
    comm.synchronize()
    done = _read_partials(out_path, header)
    comm.synchronize()
    todo = [i for i, r in enumerate(records) if r["relpath"] not in done]
    mine = todo[rank::world_size]
    if done and comm.is_main_process():
        logger.info(f"{out_path}: resuming; {len(done)} of {len(records)} images were labelled before")

    loader = DataLoader(_CropReader(records, mine), batch_size=max(batch_size, 1), num_workers=num_workers, collate_fn=list)
    start = time.perf_counter()
    is_new = not os.path.isfile(own_partial) or os.path.getsize(own_partial) == 0
    with open(own_partial, "a") as f:
        if is_new:
            f.write(json.dumps({"header": header}) + "\n")
        bar = None
        if progress and comm.is_main_process():
            from tqdm import tqdm

            bar = tqdm(total=len(mine), desc=f"labelling {dataset}", unit="img", dynamic_ncols=True)
        for batch in loader:
            for _, _, error in batch:
                if error is not None:
                    raise DatasetError(error)
            people = _label_batch(labeler, labeler_name, records, batch)
            if len(people) != len(batch):
                raise RuntimeError(f"labeler {labeler_name} returned {len(people)} results for {len(batch)} images")
            lines = [json.dumps(_entry(records[i], image, person)) for (i, image, _), person in zip(batch, people)]
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - start
    comm.synchronize()

    summary = None
    if comm.is_main_process():
        entries = _read_partials(out_path, header)
        missing = [r["relpath"] for r in records if r["relpath"] not in entries]
        if missing:
            raise RuntimeError(f"{out_path}: {len(missing)} images were not labelled, e.g. {missing[:3]}")
        images, annotations = [], {}
        for image_id, r in enumerate(records, start=1):
            e = entries[r["relpath"]]
            images.append({"id": image_id, "file_name": e["file_name"], "height": e["height"], "width": e["width"]})
            annotations[image_id] = e["annotation"]
        write_label_file(
            out_path,
            images,
            annotations,
            labeler=labeler_name,
            dataset=dataset,
            labeler_config=header["labeler_config"],
            weights=header["weights"],
        )
        for path in _partial_files(out_path):
            os.remove(path)
        summary = summarize_label_file(out_path)
        summary["images_per_s"] = len(mine) * world_size / elapsed if mine and elapsed > 0 else float("nan")
        logger.info(f"Wrote {out_path}\n" + format_summary({dataset: summary}))
    comm.synchronize()
    return summary


def summarize_label_file(path: str) -> dict:
    """{"images", "labelled", "no_person", "mean_score", "mean_keypoint_score", "mean_visible_keypoints"}."""
    with PathManager.open(path, "r") as f:
        content = json.load(f)
    anns = content["annotations"]
    scores = [a.get("score", 1.0) for a in anns]
    kp_scores = [float(np.mean(a["keypoint_scores"])) for a in anns if a.get("keypoint_scores")]
    visible = [sum(1 for v in a["keypoints"][2::3] if v > 0) for a in anns]
    return {
        "images": len(content["images"]),
        "labelled": len(anns),
        "no_person": len(content["images"]) - len(anns),
        "mean_score": float(np.mean(scores)) if scores else float("nan"),
        "mean_keypoint_score": float(np.mean(kp_scores)) if kp_scores else float("nan"),
        "mean_visible_keypoints": float(np.mean(visible)) if visible else float("nan"),
    }


def format_summary(summaries: Dict[str, dict]) -> str:
    """A table with one row per labelled split."""
    columns = ["images", "labelled", "no_person", "mean_score", "mean_keypoint_score", "mean_visible_keypoints", "images_per_s"]
    present = [c for c in columns if any(c in s for s in summaries.values())]
    titles = {"images_per_s": "speed"}
    width = max([len("split")] + [len(k) for k in summaries])
    lines = [" | ".join([f"{'split':<{width}}"] + [f"{titles.get(c, c):>10}" for c in present])]
    lines.append("-" * len(lines[0]))
    for name, s in summaries.items():
        cells = []
        for c in present:
            v = s.get(c, float("nan"))
            text = f"{v:d}" if isinstance(v, int) else format_speed(v) if c == "images_per_s" else f"{v:.3f}"
            cells.append(f"{text:>{max(10, len(titles.get(c, c)))}}")
        lines.append(" | ".join([f"{name:<{width}}"] + cells))
    return "\n".join(lines)


def format_speed(images_per_s: float) -> str:
    """ "12.5 img/s", or below 1 image a second "9.02 s/img" (a CPU labelling at full size)."""
    if not images_per_s > 0:  # nan (nothing labelled in this run) or 0
        return "-"
    return f"{images_per_s:.1f} img/s" if images_per_s >= 1 else f"{1 / images_per_s:.2f} s/img"


def labeling_targets(cfg, dataset_names: Sequence[str] = None, splits: Sequence[str] = None) -> List[tuple]:
    """[(dataset name, split, records, label file path)] for the datasets (default: DATASETS.TRAIN
    then DATASETS.TEST, each once) and splits (default PSEUDO_LABEL.SPLITS); empty splits skipped."""
    register_custom_datasets(cfg.DATASETS.CUSTOM)
    names = list(dict.fromkeys(dataset_names if dataset_names is not None else [*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]))
    splits = list(splits if splits is not None else cfg.PSEUDO_LABEL.SPLITS)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise UserError(f"PSEUDO_LABEL.SPLITS: {bad} are not splits; expected a subset of {list(SPLITS)}")
    if not names:
        raise UserError("--pseudo-label: the config names no dataset in DATASETS.TRAIN or DATASETS.TEST")
    labels_dir = resolve_labels_dir(cfg)
    targets = []
    for name in names:
        dataset = get_dataset(name, cfg.DATASETS.ROOT, log=comm.is_main_process())
        for split in splits:
            records = getattr(dataset, split)
            if records:
                targets.append((name, split, records, label_file_path(labels_dir, name, split)))
    return targets


def _label_targets(cfg, labeler: PersonLabeler, targets) -> Dict[str, dict]:
    summaries = {}
    for name, split, records, path in targets:
        summary = label_records(
            labeler,
            records,
            path,
            labeler_name=cfg.PSEUDO_LABEL.NAME,
            dataset=f"{name}_{split}",
            batch_size=cfg.PSEUDO_LABEL.BATCH_SIZE,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
            overwrite=cfg.PSEUDO_LABEL.OVERWRITE,
        )
        if summary is not None:
            summaries[f"{name}_{split}"] = summary
    if summaries:
        logger.info("Pseudo-labelling summary:\n" + format_summary(summaries))
    return summaries


def pseudo_label_from_config(cfg) -> Dict[str, dict]:
    """``tools/train_net.py --pseudo-label``: label PSEUDO_LABEL.SPLITS of every dataset in
    DATASETS.TRAIN and DATASETS.TEST with PSEUDO_LABEL.NAME. Returns {dataset_split: summary}
    in the main process."""
    targets = labeling_targets(cfg)
    if not cfg.PSEUDO_LABEL.OVERWRITE and all(PathManager.isfile(t[3]) for t in targets):
        logger.info("Every label file exists; nothing to do (PSEUDO_LABEL.OVERWRITE True recomputes them)")
        return {f"{n}_{s}": summarize_label_file(p) for n, s, _, p in targets} if comm.is_main_process() else {}
    return _label_targets(cfg, build_pseudo_labeler(cfg), targets)


def ensure_train_labels(cfg, config_file: str = "", opts: Sequence[str] = ()) -> None:
    """Before training a model that trains on person labels (DAAF): generate missing training label
    files with PSEUDO_LABEL.NAME (PSEUDO_LABEL.AUTO), or stop with one line naming the command that
    makes them: the training command's ``config_file`` and KEY VALUE ``opts`` with --pseudo-label,
    so the labels land where this config reads them. A missing dataset folder is named first: labels
    are made of the images."""
    register_custom_datasets(cfg.DATASETS.CUSTOM)
    for name in cfg.DATASETS.TRAIN:
        get_dataset(name, cfg.DATASETS.ROOT, log=False)
    labels_dir = resolve_labels_dir(cfg)
    missing = [n for n in cfg.DATASETS.TRAIN if not PathManager.isfile(label_file_path(labels_dir, n, "train"))]
    if not missing:
        return
    first = label_file_path(labels_dir, missing[0], "train")
    command = " ".join(
        ["python tools/train_net.py --config-file", shlex.quote(config_file) if config_file else "<your config>", "--pseudo-label"]
        + [shlex.quote(str(o)) for o in opts]
    )
    if not cfg.PSEUDO_LABEL.AUTO:
        raise UserError(f"label file {first} not found (DAAF branches need person labels); make it with: {command}")
    try:
        labeler = build_pseudo_labeler(cfg)
    except UserError as e:
        raise UserError(
            f"label file {first} not found and no labeler is available to make it ({e}); make the labels where one is, with: {command}"
        ) from None
    if comm.is_main_process():
        logger.info(f"Training labels missing for {missing}; generating them with {cfg.PSEUDO_LABEL.NAME}")
    _label_targets(cfg, labeler, labeling_targets(cfg, missing, ["train"]))
