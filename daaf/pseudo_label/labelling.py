"""Labelling one dataset split with a registered labeler, resumably and across processes.

Each process labels its share of the images not yet in any journal (``journal.py``; the images
left are shared round-robin), appending every batch to its own journal. When all are labelled, the
main process writes the COCO label file atomically (images in dataset order, so the file does not
depend on the number of processes) and removes the journals.
"""

import json
import logging
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from torch.utils.data import DataLoader, Dataset

from daaf.data import read_image
from daaf.data.person_labels import make_annotation, write_label_file
from daaf.utils import comm
from daaf.utils.errors import DatasetError, UserError
from daaf.utils.file_io import PathManager

from .build import PersonLabel, PersonLabeler
from .journal import JournalWriter, journal_files, journal_path, read_journals, repair_journal
from .summary import format_summary, summarize_label_file

__all__ = ["label_records"]

logger = logging.getLogger(__name__)


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
    # Through JSON once, so that it compares equal with the header read back from a journal.
    header = json.loads(json.dumps({"labeler": labeler_name, "labeler_config": labeler.info(), "weights": labeler.weights}))
    mine = _my_share(records, out_path, header)
    start = time.perf_counter()
    loader = DataLoader(_CropReader(records, mine), batch_size=max(batch_size, 1), num_workers=num_workers, collate_fn=list)
    with JournalWriter(journal_path(out_path, comm.get_rank()), header) as journal:
        _label_into_journal(labeler, labeler_name, records, loader, journal, progress_total=len(mine) if progress else 0, dataset=dataset)
    elapsed = time.perf_counter() - start
    comm.synchronize()
    summary = None
    if comm.is_main_process():
        _write_from_journals(records, out_path, header, dataset)
        summary = summarize_label_file(out_path)
        summary["images_per_s"] = len(mine) * comm.get_world_size() / elapsed if mine and elapsed > 0 else float("nan")
        logger.info(f"Wrote {out_path}\n" + format_summary({dataset: summary}))
    comm.synchronize()
    return summary


def _my_share(records: Sequence[dict], out_path: str, header: dict) -> List[int]:
    """The indices of the records this process labels: every world-size-th of those no journal
    holds yet (all processes read the journals after each repaired its own)."""
    rank, world_size = comm.get_rank(), comm.get_world_size()
    PathManager.mkdirs(os.path.dirname(os.path.abspath(out_path)))
    repair_journal(journal_path(out_path, rank))
    comm.synchronize()
    done = read_journals(out_path, header)
    comm.synchronize()
    if done and comm.is_main_process():
        logger.info(f"{out_path}: resuming; {len(done)} of {len(records)} images were labelled before")
    return [i for i, r in enumerate(records) if r["relpath"] not in done][rank::world_size]


def _label_into_journal(labeler, labeler_name: str, records, loader, journal: JournalWriter, *, progress_total: int, dataset: str) -> None:
    """Label each batch of ``loader`` and append it to ``journal``, with a progress bar in the
    main process when ``progress_total`` is not 0."""
    bar = None
    if progress_total and comm.is_main_process():
        from tqdm import tqdm

        bar = tqdm(total=progress_total, desc=f"labelling {dataset}", unit="img", dynamic_ncols=True)
    try:
        for batch in loader:
            for _, _, error in batch:
                if error is not None:
                    raise DatasetError(error)
            people = _label_batch(labeler, labeler_name, records, batch)
            if len(people) != len(batch):
                raise RuntimeError(f"labeler {labeler_name} returned {len(people)} results for {len(batch)} images")
            journal.append([_entry(records[i], image, person) for (i, image, _), person in zip(batch, people)])
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()


def _write_from_journals(records: Sequence[dict], out_path: str, header: dict, dataset: str) -> None:
    """The label file from every journal, in dataset order; then the journals go."""
    entries: Dict[str, dict] = read_journals(out_path, header)
    missing = [r["relpath"] for r in records if r["relpath"] not in entries]
    if missing:
        raise RuntimeError(f"{out_path}: {len(missing)} images were not labelled, e.g. {missing[:3]}")
    images, annotations = [], {}
    for image_id, r in enumerate(records, start=1):
        e = entries[r["relpath"]]
        images.append({"id": image_id, "file_name": e["file_name"], "height": e["height"], "width": e["width"]})
        annotations[image_id] = e["annotation"]
    write_label_file(
        out_path, images, annotations, labeler=header["labeler"], dataset=dataset,
        labeler_config=header["labeler_config"], weights=header["weights"],
    )  # fmt: skip
    for path in journal_files(out_path):
        os.remove(path)
