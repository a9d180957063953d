"""The decoder's last steps at full resolution: G 1x1 convolutions on G stacked batch slices, and
the same after a BatchNorm2d whose normalised map is never stored.

At the input size (BoT: 256x128, 64 channels, 6 groups stacked) these maps are the largest tensors of
a DAAF step, and on CPU each full pass over one costs about as much time as a convolution layer of
the backbone. Both functions compute exactly what their plain forms compute (tests/modeling/test_decoder.py
holds them to nn.Conv2d and nn.BatchNorm2d, forward and backward) in fewer passes.
"""

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from daaf.utils.fvcore_compat import get_shape

from ..flop_count import register_flop_handle

__all__ = ["grouped_pointwise_conv", "normalized_grouped_pointwise_conv"]


def _stacked_weights(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], channels: int):
    """Per-group (K_g, C, 1, 1) weights and (K_g,) biases, zero-padded to the largest K: (G, K, C), (G, K)."""
    sizes = [weight.shape[0] for weight in weights]
    k = max(sizes)
    weight = torch.stack([F.pad(w.reshape(size, channels), (0, 0, 0, k - size)) for w, size in zip(weights, sizes)])
    bias = torch.stack([F.pad(b, (0, k - size)) for b, size in zip(biases, sizes)])
    return weight, bias, sizes


def _rows(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(G * B, C, H, W) -> (G, B * H * W, C): a view when x is channels-last."""
    n, c, h, w = x.shape
    if n % groups:
        raise ValueError(f"grouped_pointwise_conv: batch {n} is not {groups} equal slices")
    return x.permute(0, 2, 3, 1).reshape(groups, (n // groups) * h * w, c)


def _maps(out: torch.Tensor, shape, sizes: List[int]) -> List[torch.Tensor]:
    """(G, B * H * W, K) -> G maps (B, K_g, H, W). Unbound before the channels are sliced, so
    that the backward pads each group's gradient to K, not to the whole stacked output."""
    groups, (n, _, h, w) = len(sizes), shape
    per_group = out.view(groups, n // groups, h, w, out.shape[-1]).unbind(0)
    return [o[..., :size].permute(0, 3, 1, 2) for o, size in zip(per_group, sizes)]


def grouped_pointwise_conv(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """G 1x1 convolutions, the g-th applied to the g-th of G equal batch slices of ``x``.

    x: (G * B, C, H, W); weights[g]: (K_g, C, 1, 1); biases[g]: (K_g,) -> G maps (B, K_g, H, W).
    One batched matmul over the channels of the channels-last rows of ``x`` (weights zero-padded
    to the largest K_g). On CPU, oneDNN's backward of a 1x1 convolution to a few channels at full
    resolution runs ~10x slower than its FLOPs, and slicing the groups out of one stacked map
    costs a full-size concatenation of their gradients; the batched form's gradient is one tensor.
    """
    weight, bias, sizes = _stacked_weights(weights, biases, x.shape[1])
    out = torch.bmm(_rows(x, len(sizes)), weight.transpose(1, 2)).add_(bias[:, None])
    return _maps(out, x.shape, sizes)


class _NormalizedPointwise(torch.autograd.Function):
    """rows (G, M, C) -> BatchNorm with the given statistics -> per-group matmul (G, M, K), the
    normalised rows never stored. With ``batch_statistics`` the mean and rstd are functions of the
    rows and the backward includes their gradient, as BatchNorm's training backward does."""

    @staticmethod
    def forward(ctx, rows, mean, rstd, gamma, beta, weight, bias, batch_statistics: bool):
        scale = gamma * rstd
        shift = beta - mean * scale
        # bmm then an in-place add: baddbmm with a broadcast input first copies it, slowly, into the output
        out = torch.bmm(rows, (weight * scale).transpose(1, 2)).add_((bias + weight @ shift)[:, None])
        ctx.save_for_backward(rows, mean, rstd, gamma, weight, scale, shift)
        ctx.batch_statistics = batch_statistics
        return out

    @staticmethod
    def backward(ctx, grad_out):
        rows, mean, rstd, gamma, weight, scale, shift = ctx.saved_tensors
        n = rows.shape[0] * rows.shape[1]
        grad_folded_bias = grad_out.sum(dim=1)  # (G, K)
        if ctx.batch_statistics:
            # mean and var (biased) of the rows: d mean / dx = 1 / n, d var / dx = 2 (x - mean) / n;
            # their terms need sum(grad * x), so it is computed first, in its own pass over the rows
            grad_folded_weight = torch.bmm(grad_out.transpose(1, 2), rows)  # (G, K, C)
            grad_scale = (grad_folded_weight * weight).sum(dim=(0, 1))
            grad_shift = (grad_folded_bias[..., None] * weight).sum(dim=(0, 1))
            grad_var = (grad_scale - grad_shift * mean) * gamma * -0.5 * rstd**3
            slope = 2 * grad_var / n
            offset = -grad_shift * scale / n - slope * mean
            grad_rows = _rows_gradient(grad_out, weight * scale, rows, slope, offset)
        else:
            grad_rows = torch.bmm(grad_out, weight * scale)
            grad_folded_weight = torch.bmm(grad_out.transpose(1, 2), rows)
            grad_scale = (grad_folded_weight * weight).sum(dim=(0, 1))
            grad_shift = (grad_folded_bias[..., None] * weight).sum(dim=(0, 1))
        grad_weight = grad_folded_weight * scale + grad_folded_bias[..., None] * shift
        grad_gamma = (grad_scale - grad_shift * mean) * rstd
        return grad_rows, None, None, grad_gamma, grad_shift, grad_weight, grad_folded_bias, None


@register_flop_handle(_NormalizedPointwise)
def _count_normalized_pointwise(inputs, outputs):
    """FLOPs as fvcore counts the BatchNorm (5 per element with batch statistics, 2 with running
    ones) and the batched matmul (G x M x C x K) that the Function computes."""
    groups, rows, channels = get_shape(inputs[0])
    batch_statistics = outputs[0].node().scalar_args()[0]
    return groups * rows * channels * ((5 if batch_statistics else 2) + get_shape(inputs[5])[1])


# rows per chunk of _rows_gradient: this many elements of one group's (rows, C) input (4 MB of float32)
_CHUNK_ELEMENTS = 1 << 20


def _rows_gradient(grad_out, folded_weight, rows, slope, offset):
    """``grad_out @ folded_weight + rows * slope + offset``: (G, M, K), (G, K, C), (G, M, C), (C,),
    (C,) -> (G, M, C), group by group and chunk by chunk of rows, so that each chunk of the result is
    written once and updated while it is in cache. Three whole-map passes (matmul, addcmul, add) cost
    2-8x more on CPU: the matmul's K is a handful of channels, so all of them are bound by memory
    traffic. Each chunk is one contiguous matrix product: a batched product into a strided slice of
    the result runs ~2x slower at the CPU demo's size."""
    groups, m, c = rows.shape
    out = rows.new_empty(groups, m, c)
    step = max(1, _CHUNK_ELEMENTS // c)
    for g in range(groups):
        for start in range(0, m, step):
            chunk = slice(start, start + step)
            # in place: out-of-place addcmul with a broadcast (C,) operand runs ~10x slower on CPU
            torch.mm(grad_out[g, chunk], folded_weight[g], out=out[g, chunk]).addcmul_(rows[g, chunk], slope).add_(offset)
    return out


def normalized_grouped_pointwise_conv(
    x: torch.Tensor, norm: Optional[nn.BatchNorm2d], weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]
) -> List[torch.Tensor]:
    """``grouped_pointwise_conv(norm(x), weights, biases)``, ``norm`` updating its running
    statistics as it would; ``norm=None``: no normalisation. Shapes as grouped_pointwise_conv's.

    On CPU outside autocast the normalisation is folded into the convolutions' weights (per
    channel: x * scale + shift), which saves the full-size normalised map and four passes over
    full-size maps per step; elsewhere (GPU, AMP) the two run one after the other.
    """
    if norm is None:
        return grouped_pointwise_conv(x, weights, biases)
    if x.device.type != "cpu" or torch.is_autocast_enabled(x.device.type):
        return grouped_pointwise_conv(norm(x), weights, biases)
    batch_statistics = norm.training or norm.running_mean is None
    rows = _rows(x, len(weights))
    if batch_statistics:
        mean, var = _batch_statistics(norm, x)
    else:
        mean, var = norm.running_mean, norm.running_var
    rstd = torch.rsqrt(var + norm.eps)
    weight, bias, sizes = _stacked_weights(weights, biases, x.shape[1])
    out = _NormalizedPointwise.apply(rows, mean, rstd, norm.weight, norm.bias, weight, bias, batch_statistics)
    return _maps(out, x.shape, sizes)


@torch.no_grad()
def _batch_statistics(norm: nn.BatchNorm2d, x: torch.Tensor):
    """The per-channel mean and biased variance of x (N, C, H, W), and in training the update of
    ``norm``'s running statistics that nn.BatchNorm2d makes (momentum None: cumulative average).
    ATen's batch_norm_update_stats reads a channels-last map ~15x faster than torch.var_mean."""
    update = norm.training and norm.track_running_stats
    if update:
        norm.num_batches_tracked.add_(1)
    momentum = (1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum) if update else 0.0
    running_mean, running_var = (norm.running_mean, norm.running_var) if update else (None, None)
    return torch.ops.aten.batch_norm_update_stats(x, running_mean, running_var, momentum)
