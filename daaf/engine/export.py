"""Export the inference network (the base network: DAAF branches are training-only) as a
``torch.export`` ExportedProgram, ONNX or TorchScript (which torch deprecates), and check each
exported file against PyTorch. ``LOAD_SNIPPETS`` says, per format, how a user loads the file."""

import warnings

import numpy as np
import torch
from torch import nn

from daaf.utils.errors import UserError
from daaf.utils.file_io import atomic_write

__all__ = [
    "ONNX_OPSETS",
    "ExportableReID",
    "detectron2_max_abs_diff",
    "example_images",
    "export_detectron2_backbone",
    "export_onnx",
    "export_program",
    "program_max_abs_diff",
    "LOAD_SNIPPETS",
    "export_torchscript",
    "onnx_max_abs_diff",
    "torchscript_max_abs_diff",
]


def _onnx_opsets():
    try:
        from torch.onnx import _constants

        return _constants.ONNX_MIN_OPSET, _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    except (ImportError, AttributeError):  # private constants of torch.onnx
        return 7, 17


# The opsets torch's TorchScript-based ONNX exporter writes.
ONNX_OPSETS = _onnx_opsets()


class ExportableReID(nn.Module):
    """The base network as exported: images (B, 3, H, W) float 0-255 RGB -> embeddings (B, D)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        from daaf.modeling.meta_arch.reid_network import strip_branches

        self.model = strip_branches(model).cpu()
        self.eval()  # exporters restore the mode they found, which must be eval

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def example_images(height: int, width: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A reproducible random (batch, 3, height, width) float batch of 0-255 values."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, height, width), generator=generator).float()


# How to load each format and embed a (B, 3, H, W) float 0-255 batch ``images`` (run by the tests).
LOAD_SNIPPETS = {
    "export": ["import torch", "model = torch.export.load('{path}').module()", "features = model(images)"],
    "onnx": [
        "import onnxruntime",
        "session = onnxruntime.InferenceSession('{path}', providers=['CPUExecutionProvider'])",
        "(features,) = session.run(['features'], {{'images': images.numpy()}})",
    ],
    "torchscript": ["import torch", "model = torch.jit.load('{path}')", "features = model(images)"],
}


def export_program(model: ExportableReID, path: str, height: int, width: int) -> None:
    """Write ``model`` as a ``torch.export`` ExportedProgram (.pt2; input (B, 3, H, W) float 0-255,
    dynamic batch) to ``path``, atomically; ``torch.export.load(path).module()`` runs it."""
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(model, (example_images(height, width),), dynamic_shapes={"images": {0: batch}})
    with atomic_write(path, "wb") as f:
        torch.export.save(program, f)


def program_max_abs_diff(path: str, model: ExportableReID, images: torch.Tensor) -> float:
    """Max |torch.export.load(path).module()(images) - model(images)|."""
    loaded = torch.export.load(path).module()
    with torch.no_grad():
        return float((loaded(images) - model(images)).abs().max())


def export_onnx(model: ExportableReID, path: str, height: int, width: int, opset: int = 17) -> None:
    """Write ``model`` as ONNX (input "images" (B, 3, H, W) float 0-255, output "features"
    (B, D), dynamic batch) to ``path``, atomically."""
    with atomic_write(path, "wb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter
        torch.onnx.export(
            model,
            (example_images(height, width),),
            f,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


def onnx_max_abs_diff(path: str, model: ExportableReID, images: torch.Tensor) -> float:
    """Max |onnxruntime(path)(images) - model(images)| for a (B, 3, H, W) float batch."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError("checking the ONNX file needs onnxruntime: pip install onnxruntime (or pass --no-check)") from None
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (exported,) = session.run(["features"], {"images": images.numpy().astype(np.float32)})
    with torch.no_grad():
        expected = model(images).numpy()
    return float(np.abs(exported - expected).max())


def export_torchscript(model: ExportableReID, path: str, height: int, width: int) -> None:
    """Write ``model`` traced to TorchScript to ``path``, atomically."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        traced = torch.jit.trace(model, (example_images(height, width),))
        with atomic_write(path, "wb") as f:
            torch.jit.save(traced, f)


def torchscript_max_abs_diff(path: str, model: ExportableReID, images: torch.Tensor) -> float:
    """Max |torch.jit.load(path)(images) - model(images)|."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(path)
        return float((loaded(images) - model(images)).abs().max())


def _detectron2_adapter(model: ExportableReID):
    from daaf.modeling.backbones.detectron2_adapter import Detectron2BackboneAdapter

    backbone = model.model.backbone
    if not isinstance(backbone, Detectron2BackboneAdapter):
        raise UserError(
            f"--format detectron2 needs a detectron2 backbone (MODEL.BACKBONE.NAME build_detectron2_backbone); "
            f"this model's is {type(backbone).__name__}"
        )
    return backbone


def export_detectron2_backbone(model: ExportableReID, path: str) -> None:
    """Write the backbone of ``model`` (a detectron2 backbone) as a .pth that detectron2's
    ``DetectionCheckpointer`` loads, atomically; see ``Detectron2BackboneAdapter.detectron2_checkpoint``."""
    checkpoint = _detectron2_adapter(model).detectron2_checkpoint()
    with atomic_write(path, "wb") as f:
        torch.save(checkpoint, f)


def detectron2_max_abs_diff(path: str, model: ExportableReID, images: torch.Tensor) -> float:
    """Max |features of a fresh copy of the detectron2 backbone that detectron2's
    DetectionCheckpointer loaded from ``path`` - the model's backbone features|, over every stage,
    for a (B, 3, H, W) float 0-255 batch (normalised as the model does)."""
    import copy

    from detectron2.checkpoint import DetectionCheckpointer

    adapter = _detectron2_adapter(model)
    fresh = copy.deepcopy(adapter.body)
    with torch.no_grad():  # so that nothing of the original survives unless the file restores it
        for tensor in fresh.state_dict().values():
            if tensor.is_floating_point():
                tensor.zero_()
    DetectionCheckpointer(fresh).load(path)
    normalised = model.model.preprocess_image(images)
    with torch.no_grad():
        expected, loaded = adapter.body.eval()(normalised), fresh.eval()(normalised)
    return max(float((loaded[k] - expected[k]).abs().max()) for k in expected)
