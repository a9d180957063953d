"""ReIDBatch: the one structure a batch has from the loader to the model, the evaluator and the tools."""

import dataclasses
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

__all__ = ["ReIDBatch", "PERSON_LABEL_FIELDS", "collate_reid_batch"]

# The optional fields a model may ask the loader for (see ``daaf.modeling.model_input_fields``);
# they come from the person-label files. ``has_label`` comes with either of them.
PERSON_LABEL_FIELDS = frozenset({"masks", "keypoints"})


@dataclass
class ReIDBatch:
    """A batch of B crops.

    Attributes:
        images: (B, 3, H, W) uint8, RGB (or BGR with INPUT.FORMAT BGR), after the transforms.
        pids: (B,) int64 identities (training: relabelled 0..N-1; -1 for images without one).
        camids: (B,) int64 cameras.
        file_names: the B image paths.
        masks: (B, H, W) uint8 0/1 person masks in the frame of ``images``, when the model asks
            for "masks"; all zero where ``has_label`` is False.
        keypoints: (B, 17, 3) float32 [x, y, v] in pixels of ``images`` (COCO order; v = 0: not
            visible or outside the crop), when the model asks for "keypoints"; zero where
            ``has_label`` is False.
        has_label: (B,) bool, False for the crops the labeler found nobody in; present when
            ``masks`` or ``keypoints`` is.
    """

    images: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor
    file_names: List[str]
    masks: Optional[torch.Tensor] = None
    keypoints: Optional[torch.Tensor] = None
    has_label: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device, non_blocking: bool = False) -> "ReIDBatch":
        """The same batch with every tensor on ``device``."""
        moved = {
            f.name: value.to(device, non_blocking=non_blocking)
            for f in dataclasses.fields(self)
            if isinstance(value := getattr(self, f.name), torch.Tensor)
        }
        return dataclasses.replace(self, **moved)


def collate_reid_batch(items: Sequence[dict]) -> ReIDBatch:
    """Stack the mapper's crops ({"image", "pid", "camid", "file_name"} and, when asked for,
    "mask" (H, W), "keypoints" (17, 3), "has_label"; see ``ReIDDatasetMapper``) into a ReIDBatch."""
    first = items[0]
    return ReIDBatch(
        images=torch.stack([it["image"] for it in items]),
        pids=torch.tensor([it["pid"] for it in items], dtype=torch.int64),
        camids=torch.tensor([it["camid"] for it in items], dtype=torch.int64),
        file_names=[it["file_name"] for it in items],
        masks=torch.stack([it["mask"] for it in items]) if "mask" in first else None,
        keypoints=torch.stack([it["keypoints"] for it in items]) if "keypoints" in first else None,
        has_label=torch.tensor([it["has_label"] for it in items], dtype=torch.bool) if "has_label" in first else None,
    )
