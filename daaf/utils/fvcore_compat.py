"""fvcore.nn imported once, without the FutureWarning that importing it raises on recent torch
(fvcore decorates some losses with the deprecated ``torch.jit.script``; we do not use those)."""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit\.script.*")
    from fvcore.nn import FlopCountAnalysis, parameter_count
    from fvcore.nn.jit_handles import conv_flop_count, get_shape
    from fvcore.nn.precise_bn import get_bn_modules, update_bn_stats

__all__ = ["FlopCountAnalysis", "parameter_count", "conv_flop_count", "get_shape", "get_bn_modules", "update_bn_stats"]
