"""Which implementation the rank metrics and re-ranking use: one per backend a user can have.

- ``"numba"``: the compiled kernels (``kernels.py``), on the CPU where numba is installed;
- ``"numpy"``: the fallback on the CPU without numba;
- ``"torch"``: the path for data on an accelerator (torch operations on the data's device).

All three give the same numbers (tests/evaluation checks each against the slow reference in
tests/reference_evaluation.py). ``DAAF_EVAL_BACKEND`` chooses one for data on the CPU (``torch``
runs the accelerator's path on CPU tensors); data on an accelerator always takes ``torch``.
"""

import os

import torch

from daaf.utils.errors import UserError

from . import kernels

__all__ = ["EVALUATION_BACKENDS", "evaluation_backend"]

EVALUATION_BACKENDS = ("numba", "numpy", "torch")


def evaluation_backend(device="cpu") -> str:
    """The backend (one of EVALUATION_BACKENDS) for data on ``device`` (a torch.device or its name)."""
    if torch.device(device).type != "cpu":
        return "torch"
    chosen = os.environ.get("DAAF_EVAL_BACKEND", "")
    if chosen == "":
        return "numba" if kernels.numba is not None else "numpy"
    if chosen not in EVALUATION_BACKENDS:
        raise UserError(f"DAAF_EVAL_BACKEND={chosen!r}: expected one of {', '.join(EVALUATION_BACKENDS)} (or unset: numba when installed)")
    if chosen == "numba" and kernels.numba is None:
        raise UserError("DAAF_EVAL_BACKEND=numba: numba is not installed (pip install numba)")
    return chosen
