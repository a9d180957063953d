"""ReIDBatch: the one structure a batch has from the loader to the model, the evaluator and the
tools; PersonLabels: its person labels, one structure from the mapper to the losses."""

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, FrozenSet, List, Optional, Sequence

import torch

__all__ = ["ReIDBatch", "PersonLabels", "collate_reid_batch"]


def _moved(obj, device, non_blocking: bool):
    """``obj`` (a dataclass) with each tensor field on ``device``."""
    moved = {
        f.name: value.to(device, non_blocking=non_blocking)
        for f in dataclasses.fields(obj)
        if isinstance(value := getattr(obj, f.name), (torch.Tensor, PersonLabels))
    }
    return dataclasses.replace(obj, **moved)


@dataclass
class PersonLabels:
    """The person labels of B crops, in the frame of their images (detectron2's ``Instances`` is
    the model: typed fields, :meth:`has`, :meth:`to`). A model asks the loader for some of
    :attr:`FIELDS` (see ``daaf.modeling.model_input_fields``); the others are None.

    Attributes:
        has_label: (B,) bool, False for the crops the labeler found nobody in.
        masks: (B, H, W) uint8 0/1 person masks; all zero where ``has_label`` is False.
        keypoints: (B, 17, 3) float32 [x, y, v] in pixels (COCO order; v = 0: not visible or
            outside the crop); zero where ``has_label`` is False.
    """

    has_label: torch.Tensor
    masks: Optional[torch.Tensor] = None
    keypoints: Optional[torch.Tensor] = None

    FIELDS: ClassVar[FrozenSet[str]] = frozenset({"masks", "keypoints"})

    def __len__(self) -> int:
        return len(self.has_label)

    def has(self, field: str) -> bool:
        """Whether the labels hold ``field`` (one of :attr:`FIELDS`)."""
        if field not in self.FIELDS:
            raise KeyError(f"PersonLabels have no field {field!r} (they have {sorted(self.FIELDS)})")
        return getattr(self, field) is not None

    def to(self, device, non_blocking: bool = False) -> "PersonLabels":
        """The same labels with every tensor on ``device``."""
        return _moved(self, device, non_blocking)

    @classmethod
    def cat(cls, items: Sequence["PersonLabels"]) -> "PersonLabels":
        """The labels of several batches (or single crops, B = 1) as one, in order."""
        first = items[0]
        return cls(
            has_label=torch.cat([it.has_label for it in items]),
            masks=torch.cat([it.masks for it in items]) if first.masks is not None else None,
            keypoints=torch.cat([it.keypoints for it in items]) if first.keypoints is not None else None,
        )


@dataclass
class ReIDBatch:
    """A batch of B crops.

    Attributes:
        images: (B, 3, H, W) uint8, RGB (or BGR with INPUT.FORMAT BGR), after the transforms.
        pids: (B,) int64 identities (training: relabelled 0..N-1; -1 for images without one).
        camids: (B,) int64 cameras.
        file_names: the B image paths.
        person_labels: the crops' :class:`PersonLabels`, when the model asks for some of them.
    """

    images: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor
    file_names: List[str]
    person_labels: Optional[PersonLabels] = None

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device, non_blocking: bool = False) -> "ReIDBatch":
        """The same batch with every tensor on ``device``."""
        return _moved(self, device, non_blocking)


def collate_reid_batch(items: Sequence[dict]) -> ReIDBatch:
    """Stack the mapper's crops ({"image", "pid", "camid", "file_name"} and, when the model asks
    for them, "person_labels" of one crop; see ``ReIDDatasetMapper``) into a ReIDBatch."""
    first = items[0]
    return ReIDBatch(
        images=torch.stack([it["image"] for it in items]),
        pids=torch.tensor([it["pid"] for it in items], dtype=torch.int64),
        camids=torch.tensor([it["camid"] for it in items], dtype=torch.int64),
        file_names=[it["file_name"] for it in items],
        person_labels=PersonLabels.cat([it["person_labels"] for it in items]) if "person_labels" in first else None,
    )
