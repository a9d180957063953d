"""FLOP counts of models as fvcore counts them (one multiply-add is one FLOP), with the project's
own autograd Functions counted as the operations they compute.

fvcore traces a model and counts each traced operator with a handle; a ``torch.autograd.Function``
appears in the trace as one opaque ``prim::PythonOp`` node, which fvcore skips. A module that runs
its arithmetic in such a Function registers a handle for it with :func:`register_flop_handle`, so a
faster kernel never changes the count (benchmarks compare time ratios with FLOPs ratios).
"""

from typing import Any, Callable, Dict, List

from torch import nn

from daaf.utils.fvcore_compat import FlopCountAnalysis

__all__ = ["count_flops", "register_flop_handle"]

FlopHandle = Callable[[List[Any], List[Any]], float]
_HANDLES: Dict[str, FlopHandle] = {}


def register_flop_handle(function: type) -> Callable[[FlopHandle], FlopHandle]:
    """Decorator: the decorated fvcore handle ``(inputs, outputs) -> FLOPs`` (jit values, whose
    shapes ``fvcore.nn.jit_handles.get_shape`` reads) counts the autograd Function ``function``."""

    def register(handle: FlopHandle) -> FlopHandle:
        _HANDLES[f"prim::PythonOp.{function.__name__}"] = handle
        return handle

    return register


def count_flops(module: nn.Module, inputs: tuple) -> int:
    """Total FLOPs of ``module(*inputs)``, as fvcore counts them, the registered Functions included."""
    analysis = FlopCountAnalysis(module, inputs).set_op_handle(**_HANDLES)
    return analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).total()
