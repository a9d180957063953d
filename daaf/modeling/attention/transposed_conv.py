"""The decoder's stride-2 3x3 transposed convolution (padding 1, output padding 1) with a faster
weight gradient on CPU for large inputs.

oneDNN computes this layer's forward pass and input gradient near the CPU's peak, but its weight
gradient runs 3-4x slower than the forward pass once an input map no longer fits the cache: at
PAB's last layer (6 groups stacked, 64 channels from 128x64 up to 256x128) it is the largest single
cost of a DAAF step. There the weight gradient is nine exact products of the input with the four
output phases of the gradient: per chunk of images, the input and the phases are copied into
zero-padded row-major buffers that stay in cache, where every tap's shift is a plain offset, and
four matrix products cover the nine taps. On smaller inputs oneDNN's own weight gradient is the
faster one (1.1-1.8x at 64x32 and below, projects/DAAF/benchmarks/bench_decoder.py), so inputs under
``_MIN_CHUNKED_PIXELS`` pixels, other devices and dtypes use ``F.conv_transpose2d`` unchanged.
tests/modeling/test_decoder.py holds the result to ``F.conv_transpose2d``'s gradients.
"""

import torch
import torch.nn.functional as F

from daaf.utils.fvcore_compat import conv_flop_count, get_shape

from ..flop_count import register_flop_handle

__all__ = ["stride2_transposed_conv3x3", "transposed_conv3x3_weight_grad"]

# elements of the per-chunk gradient buffer (4 MB of float32): large enough that Python's
# per-chunk overhead is small, small enough to stay in the last-level cache with the input's
_CHUNK_ELEMENTS = 1 << 20
# input pixels (H * W) from which the chunked weight gradient beats oneDNN's on the CPU: 0.5x its
# time at 128x64, 1.1x at 64x32 (bench_decoder.py, 2 threads)
_MIN_CHUNKED_PIXELS = 128 * 64


def transposed_conv3x3_weight_grad(x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """Weight gradient of ``F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)``.

    x: (N, C_in, H, W), grad_out: (N, C_out, 2H, 2W), both channels-last -> (C_in, C_out, 3, 3).
    Output row 2i is tap 1 of input row i; row 2i+1 is tap 2 of row i and tap 0 of row i+1 (the
    same for columns). The gradient's phases are stored per pixel in the order (even row, even col),
    (even, odd), (odd, odd), (odd, even), so that each input shift meets a contiguous run of them.
    The products are accumulated transposed, (phases x C_out, C_in): MKL runs that orientation
    ~8% faster here.
    """
    n, c, h, w = x.shape
    co = grad_out.shape[1]
    row = w + 1  # one zero column per row, and one zero row per image, make every shift exact
    pixels = (h + 1) * row
    chunk = max(1, min(n, _CHUNK_ELEMENTS // (pixels * 4 * co)))
    x_rows = x.permute(0, 2, 3, 1)  # (N, H, W, C), a view of channels-last memory
    phases = grad_out.permute(0, 2, 3, 1).reshape(n, h, 2, w, 2, co)  # (N, H, row phase, W, col phase, C_out)
    x_buf = x.new_zeros(chunk * pixels + row + 1, c)
    g_buf = x.new_zeros(chunk, h + 1, row, 4, co)
    x_images = x_buf[: chunk * pixels].view(chunk, h + 1, row, c)
    # (input shift, first phase, number of phases): shift 0 meets all four phases; one column
    # right meets the odd-column phases; one row down the odd-row phases; both, (odd, odd)
    plan = ((0, 0, 4), (1, 1, 2), (row, 2, 2), (row + 1, 2, 1))
    sums = [x.new_zeros(k * co, c) for _, _, k in plan]
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        x_images[:k, :h, :w].copy_(x_rows[start : start + k])
        g_buf[:k, :h, :w, 0:2].copy_(phases[start : start + k, :, 0])
        g_buf[:k, :h, :w, 2].copy_(phases[start : start + k, :, 1, :, 1])
        g_buf[:k, :h, :w, 3].copy_(phases[start : start + k, :, 1, :, 0])
        length = k * pixels
        grads = g_buf.view(chunk * pixels, 4 * co)
        for total, (shift, first, count) in zip(sums, plan):
            total.addmm_(grads[:length, first * co : (first + count) * co].t(), x_buf[shift : shift + length])
    grad_weight = x.new_empty(c, co, 3, 3)
    taps = [[(1, 1), (1, 2), (2, 2), (2, 1)], [(1, 0), (2, 0)], [(0, 2), (0, 1)], [(0, 0)]]
    for total, tap_list in zip(sums, taps):
        for j, (kh, kw) in enumerate(tap_list):
            grad_weight[:, :, kh, kw] = total[j * co : (j + 1) * co].t()
    return grad_weight


class _Stride2TransposedConv3x3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv_transpose2d(x, weight, bias, stride=2, padding=1, output_padding=1)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, [2, 2], [1, 1], [1, 1], True, [1, 1], 1, [True, False, False]
            )[0]
        if ctx.needs_input_grad[1]:
            grad_weight = transposed_conv3x3_weight_grad(x, grad_out)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_weight, grad_bias


@register_flop_handle(_Stride2TransposedConv3x3)
def _count_transposed_conv(inputs, outputs):
    """FLOPs as fvcore counts the ``aten::conv_transpose2d`` it computes."""
    return conv_flop_count(get_shape(inputs[0]), get_shape(inputs[1]), get_shape(outputs[0]), transposed=True)


def stride2_transposed_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias=None) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, bias, stride=2, padding=1, output_padding=1)``: (N, C_in, H, W)
    -> (N, C_out, 2H, 2W) for a (C_in, C_out, 3, 3) weight; on CPU in float32 outside autocast,
    for inputs of at least ``_MIN_CHUNKED_PIXELS`` pixels, with the weight gradient of
    :func:`transposed_conv3x3_weight_grad`."""
    fast = (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and tuple(weight.shape[2:]) == (3, 3)
        and x.is_contiguous(memory_format=torch.channels_last)
        and torch.is_grad_enabled()
        and x.shape[-2] * x.shape[-1] >= _MIN_CHUNKED_PIXELS
    )
    if not fast:
        return F.conv_transpose2d(x, weight, bias, stride=2, padding=1, output_padding=1)
    return _Stride2TransposedConv3x3.apply(x, weight, bias)
