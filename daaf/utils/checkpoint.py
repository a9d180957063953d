"""fvcore's Checkpointer with atomic writes and one-line errors for unusable weight files."""

import logging
import os
import pickle
import re

import torch
from fvcore.common.checkpoint import Checkpointer, PeriodicCheckpointer

from .errors import UserError
from .file_io import PathManager, atomic_write

__all__ = ["DAAFCheckpointer", "PeriodicCheckpointer"]


def _examples(keys, n: int = 3) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


class DAAFCheckpointer(Checkpointer):
    """Saves ``{model, optimizer, scheduler, iteration, ...}`` and the ``last_checkpoint`` tag.

    Every file is written to a temporary name beside its target and renamed into place, so a
    process killed at any moment never leaves a truncated ``model_*.pth`` or ``last_checkpoint``.
    Files are read with ``torch.load(weights_only=True)``: a file that would build other objects
    (and could run code while unpickled) is refused in one line, unless ``trusted``
    (MODEL.TRUSTED_WEIGHTS). Loading a missing or unreadable file raises :class:`UserError` naming
    it. Missing, unexpected and shape-mismatched parameters are logged by fvcore.
    """

    def __init__(self, model, save_dir: str = "", *, save_to_disk: bool = True, trusted: bool = False, **checkpointables):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.trusted = trusted
        self.path_manager = PathManager
        self.logger = logging.getLogger("daaf.checkpoint")

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Checkpoint written: {save_file}")
        with atomic_write(save_file, "wb") as f:
            torch.save(data, f)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        with atomic_write(os.path.join(self.save_dir, "last_checkpoint"), "w") as f:
            f.write(last_filename_basename)

    def load(self, path: str, checkpointables=None):
        if path and not path.startswith(("http://", "https://")) and not self.path_manager.isfile(path):
            raise UserError(f"checkpoint not found: {path} (MODEL.WEIGHTS or the last_checkpoint tag)")
        return super().load(path, checkpointables=checkpointables)

    def load_exactly(self, path: str) -> dict:
        """:meth:`load` the model's weights from ``path``, then a one-line UserError when the file
        does not fit the model (tensors of the model missing from it, or of another shape), so that
        nothing runs or is evaluated half-initialised. Tensors of training-only branches that the
        model lacks are ignored (a DAAF checkpoint loads into its base network)."""
        checkpoint = self.load(path, checkpointables=[])
        incompatible = self.last_incompatible
        missing = [k for k in incompatible.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or incompatible.incorrect_shapes:
            parts = []
            if missing:
                parts.append(f"{len(missing)} tensors of the model are missing ({_examples(missing)})")
            if incompatible.incorrect_shapes:
                shapes = [f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in incompatible.incorrect_shapes]
                parts.append(f"{len(shapes)} have another shape, checkpoint vs model ({_examples(shapes, 2)})")
            raise UserError(f"{path} does not fit the config: " + "; ".join(parts) + " - is it the config it was trained with?")
        return checkpoint

    def _load_model(self, checkpoint):
        # A checkpoint of a network with training-only parts (DAAF's branches) loaded into its
        # inference network: those tensors have no place there; say so once instead of listing
        # them as unexpected keys. The model says which keys are training-only.
        # (fvcore's Checkpointer keeps the module inside a DDP wrapper as self.model)
        is_training_only = getattr(self.model, "is_training_only_key", None)
        model_keys = self.model.state_dict().keys()
        dropped = [k for k in checkpoint["model"] if is_training_only is not None and is_training_only(k) and k not in model_keys]
        if dropped:
            for k in dropped:
                checkpoint["model"].pop(k)
            self.logger.info(f"Ignored {len(dropped)} tensors of training-only parts of the network (not part of this model)")
        # Kept so that tools which need an exact fit (export, features) can refuse a mismatch.
        self.last_incompatible = super()._load_model(checkpoint)
        return self.last_incompatible

    def _load_file(self, filename: str):
        try:
            loaded = torch.load(filename, map_location=torch.device("cpu"), weights_only=not self.trusted)
        except pickle.UnpicklingError as e:
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
            if found is None:  # not a pickle at all, or a broken one
                raise UserError(f"cannot read checkpoint {filename}: not a PyTorch checkpoint (or a damaged one)") from None
            what = f"would build {found.group(1)}"
            raise UserError(
                f"{filename}: refused to load: unpickling it {what}, and a file that asks for that can run code; "
                "if you trust the file, set MODEL.TRUSTED_WEIGHTS True"
            ) from None
        except Exception as e:  # torch raises many types for corrupt files
            raise UserError(f"cannot read checkpoint {filename}: {type(e).__name__}: {e}".splitlines()[0]) from None
        if isinstance(loaded, dict) and "model" in loaded:
            return loaded
        if isinstance(loaded, dict) and all(isinstance(v, torch.Tensor) for v in loaded.values()):
            return {"model": loaded}  # a bare state_dict
        raise UserError(f"{filename}: expected a checkpoint dict with a 'model' entry or a state_dict")
