"""Access to the optional detectron2 with one-line errors: whether it is installed, its
model-zoo configs and weights, and loading weights files without running code from them."""

import importlib.util
import os

import torch

from .errors import UserError

__all__ = [
    "DETECTRON2_INSTALL_HINT",
    "require_detectron2",
    "detectron2_config_file",
    "detectron2_checkpoint_url",
    "fetch_detectron2_weights",
    "load_weights_pickle",
    "load_detectron2_weights",
]

DETECTRON2_INSTALL_HINT = (
    "detectron2 is not installed; build it from its repository: bash tools/install_detectron2.sh "
    "(in a DAAF-ReID checkout), or python -m pip install --no-build-isolation "
    "'git+https://github.com/facebookresearch/detectron2.git'"
)


def require_detectron2(what: str) -> None:
    """Raise a one-line UserError naming ``what`` needs detectron2 when it cannot be imported."""
    try:
        import detectron2  # noqa: F401
    except ImportError:
        raise UserError(f"{what}: {DETECTRON2_INSTALL_HINT}") from None


def detectron2_config_file(name: str, key: str) -> str:
    """A detectron2 YAML: ``name`` itself when it is a file, else the model-zoo config of that name
    (e.g. "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"). UserError naming ``key`` if absent."""
    if os.path.isfile(name):
        return name
    require_detectron2(key)
    spec = importlib.util.find_spec("detectron2")
    path = os.path.join(os.path.dirname(spec.origin), "model_zoo", "configs", name)
    if not os.path.isfile(path):
        raise UserError(f"{key}: '{name}' is neither a file nor a config of detectron2's model zoo ({path})")
    return path


def detectron2_checkpoint_url(name: str, key: str) -> str:
    """The model-zoo weights URL of the model-zoo config ``name``; UserError naming ``key`` if unknown."""
    require_detectron2(key)
    try:
        from detectron2 import model_zoo
    except ImportError as e:  # its model_zoo imports pkg_resources, gone from setuptools >= 81
        raise UserError(
            f"{key}: cannot look up the model-zoo weights of '{name}' ({e}); "
            "pip install 'setuptools<81' or give the weights file or URL explicitly"
        ) from None
    try:
        return model_zoo.get_checkpoint_url(name)
    except RuntimeError:
        raise UserError(f"{key}: '{name}' has no weights in detectron2's model zoo; give a weights file or URL") from None


def _cannot_load_weights(key: str, weights: str, error: Exception) -> UserError:
    """The one-line error for weights that cannot be had or read, with the cause on the same line."""
    message = " ".join(str(error).split())[:300]
    return UserError(f"{key}: cannot load weights '{weights}' ({type(error).__name__}: {message})")


def fetch_detectron2_weights(weights: str, key: str) -> str:
    """A local copy of ``weights`` (a path, a URL or a detectron2:// name; URLs are downloaded
    once into detectron2's cache) through detectron2's PathManager; a one-line UserError naming
    ``key`` when it cannot be had. Called for every weights file before any model is built."""
    require_detectron2(key)
    from detectron2.utils.file_io import PathManager as Detectron2PathManager

    try:
        local = Detectron2PathManager.get_local_path(weights)
    except Exception as e:  # no network, an unknown host, a 404
        raise _cannot_load_weights(key, weights, e) from None
    if not os.path.isfile(local):
        raise UserError(f"{key}: cannot load weights '{weights}' (no such file)")
    return local


# What a weights pickle (detectron2's model zoo, Detectron1/Caffe2) may build: NumPy arrays and
# scalars, and containers. Anything else (a function to call, a class to make) is refused.
_SAFE_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


def load_weights_pickle(file, name: str):
    """Unpickle a .pkl weights file without running code from it: only NumPy arrays, scalars and
    containers may be built (detectron2's own loader calls pickle.load, which would run any code
    the file names). UserError naming ``name`` and what the file asked for otherwise."""
    import pickle

    class _WeightsUnpickler(pickle.Unpickler):
        def find_class(self, module, qualname):
            if (module, qualname) in _SAFE_PICKLE_GLOBALS or (module.startswith("numpy") and qualname.endswith("DType")):
                return super().find_class(module, qualname)
            raise UserError(f"{name}: refused to unpickle '{module}.{qualname}' (a weights file holds arrays only; is it one?)")

    return _WeightsUnpickler(file, encoding="latin1").load()


def load_detectron2_weights(model, weights: str, key: str) -> None:
    """``weights`` into the detectron2 ``model`` with detectron2's DetectionCheckpointer (its
    name matching for model-zoo and Caffe2 files); .pkl files are unpickled by
    :func:`load_weights_pickle`, .pth files by torch with weights_only. A one-line UserError naming
    ``key`` when the file cannot be read or is not a checkpoint."""
    from detectron2.checkpoint import DetectionCheckpointer

    class _SafeCheckpointer(DetectionCheckpointer):
        def _torch_load(self, filename):  # detectron2's route for .pth files
            return torch.load(filename, map_location="cpu", weights_only=True)

        def _load_file(self, filename):
            if filename.endswith(".pyth"):  # pycls, as detectron2 reads it, without unpickling code
                state = self._torch_load(filename)["model_state"]
                return {
                    "model": {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")},
                    "__author__": "pycls",
                    "matching_heuristics": True,
                }
            if not filename.endswith(".pkl"):
                return super()._load_file(filename)
            with open(filename, "rb") as f:
                data = load_weights_pickle(f, key)
            if "model" in data and "__author__" in data:  # detectron2's model zoo format
                return data
            data = data.get("blobs", data)  # Detectron1 / Caffe2 files, as detectron2 reads them
            data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
            return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}

    try:
        _SafeCheckpointer(model).load(weights)
    except UserError:
        raise
    except Exception as e:  # a download without network, a missing or foreign file
        raise _cannot_load_weights(key, weights, e) from None
